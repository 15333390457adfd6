"""Measured rates of the key detector (`find_key_like`): false positives on realistic, key-free manifest
values, and detection of fake keys of every known prefix.

Run with `-s` to see the figures. The values are generated from a fixed seed, so the run is
reproducible; the categories mirror what manifests hold (model ids, URLs, internal ids, descriptions,
UUIDs, digests, dates, env var names, paths, short base64 values, long slugs).
"""

from __future__ import annotations

import base64
import hashlib
import random
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from expctl.core.manifest.secretscan import find_key_like

from .keys import ALNUM, EMBEDDINGS, FAKE_KEYS, URLSAFE, _mixed, fake_key, kind_of

SEED = 20241022
PER_CATEGORY = 170  # 12 categories: ~2,000 values

PROVIDERS = ["anthropic", "openai", "meta-llama", "mistralai", "google", "Qwen", "deepseek-ai", "nvidia", "x-ai",
             "cohere", "microsoft", "01-ai", "NousResearch", "amazon"]
FAMILIES = ["claude-3-5-sonnet", "claude-3-7-sonnet", "claude-sonnet-4", "gpt-4o", "gpt-4o-mini", "gpt-4.1",
            "o3-mini", "Meta-Llama-3.1-405B-Instruct", "Llama-3.3-70B-Instruct-Turbo", "Mixtral-8x22B-Instruct",
            "Mistral-Large-Instruct", "gemini-1.5-pro", "gemini-2.0-flash-exp", "Qwen2.5-Coder-32B-Instruct",
            "DeepSeek-V3", "DeepSeek-R1-Distill-Llama-70B", "Nemotron-4-340B-Instruct", "grok-2-vision",
            "command-r-plus", "Phi-3.5-MoE-instruct", "Yi-Large", "Hermes-3-Llama-3.1-405B", "nova-pro-v1"]
WORDS = ["preview", "canary", "control", "treatment", "baseline", "checkpoint", "router", "long", "context", "task",
         "risk", "desk", "mask", "disk", "ask", "flask", "eval", "bakeoff", "partner", "internal", "latency",
         "reasoning", "cache", "prompt", "tools", "vision", "coder", "summary", "support", "billing", "agent",
         "fallback", "shadow", "warmup", "region", "eu", "us", "west", "east", "rollout", "pilot", "trial"]
HOSTS = ["api.anthropic.com", "api.openai.com", "openrouter.ai", "partner.example.com", "inference.example.net",
         "dashscope-intl.aliyuncs.com", "generativelanguage.googleapis.com", "api.fireworks.ai", "api.together.xyz",
         "eastus2-prod-aoai.openai.azure.com", "bedrock-runtime.us-east-1.amazonaws.com", "10.12.0.7:8443",
         "llm-gateway.internal.example.org", "us-central1-aiplatform.googleapis.com"]


def date(rng: random.Random) -> datetime:
    return datetime(2023, 1, 1, tzinfo=UTC) + timedelta(seconds=rng.randrange(3 * 365 * 86400))


def model_id(rng: random.Random) -> str:
    family = rng.choice(FAMILIES)
    suffix = rng.choice(["", f"-{date(rng):%Y%m%d}", f"-{date(rng):%Y-%m-%d}", "-latest", f"-v{rng.randint(1, 3)}:0",
                         f"-{rng.randint(2401, 2512)}", "-preview", f"@{date(rng):%Y%m%d}"])
    shape = rng.randrange(4)
    if shape == 0:
        return family + suffix
    if shape == 1:
        return f"{rng.choice(PROVIDERS)}/{family}{suffix}"
    if shape == 2:
        return f"accounts/fireworks/models/{family.lower().replace('.', 'p')}{suffix}"
    return f"{rng.choice(['anthropic', 'meta', 'amazon', 'mistral'])}.{family.lower()}{suffix}"


def slug(rng: random.Random, words: int) -> str:
    parts = [rng.choice(WORDS) for _ in range(words)]
    if rng.random() < 0.5:
        parts.append(rng.choice(["rc1", "rc2", "v2", "v10", "2024", "2025q1", "b7", "x3"]))
    return "-".join(parts)


def url(rng: random.Random) -> str:
    host = rng.choice(HOSTS)
    path = rng.choice([
        "/v1", "/api/v1", "/v1beta/openai/", "/compatible-mode/v1", "/inference/v1",
        f"/openai/deployments/{rng.choice(['GPT4o-Prod', 'gpt-4o-mini-2024-07-18', 'Claude35Sonnet-EU'])}"
        "/chat/completions",
        f"/model/{model_id(rng)}/invoke",
        f"/v1/projects/{slug(rng, 2)}-{rng.randint(100, 999999)}/locations/us-central1/publishers/anthropic/models/"
        f"{rng.choice(FAMILIES).lower()}:streamRawPredict",
    ])
    query = rng.choice(["", "?api-version=2024-10-21", f"?region={rng.choice(WORDS)}&beta=true",
                        f"?team={slug(rng, 2)}&trace={uuid.UUID(int=rng.getrandbits(128))}"])
    return f"https://{host}{path}{query}"


def description(rng: random.Random) -> str:
    words = [rng.choice(WORDS) for _ in range(rng.randint(6, 30))]
    words.insert(rng.randrange(len(words)), model_id(rng))
    words.insert(rng.randrange(len(words)), f"({date(rng):%Y-%m-%d})")
    if rng.random() < 0.3:
        words.append(f"See https://{rng.choice(HOSTS)}/docs/{slug(rng, 3)} and JIRA-{rng.randint(100, 9999)}.")
    return " ".join(words).capitalize()


def short_base64(rng: random.Random) -> str:
    return base64.b64encode(rng.randbytes(rng.randint(3, 21))).decode()  # at most 28 characters


def hex_digest(rng: random.Random) -> str:
    # No sha256 (64 hex): flagged on purpose, like the 64-hex keys it cannot be told from
    # (test_secretscan_hex.py). Six choices still, so the other categories draw the same values.
    data = rng.randbytes(16)
    return rng.choice([
        hashlib.sha1(data).hexdigest(), hashlib.sha512(data).hexdigest(), hashlib.md5(data).hexdigest(),
        "sha1:" + hashlib.sha1(data).hexdigest(), hashlib.sha1(data).hexdigest()[:12],
        hashlib.sha384(data).hexdigest().upper(),
    ])


CATEGORIES: dict[str, Callable[[random.Random], str]] = {
    "model id": model_id,
    "url": url,
    "internal id": lambda r: slug(r, r.randint(2, 5)),
    "long slug": lambda r: slug(r, r.randint(6, 12)),
    "description": description,
    "uuid": lambda r: str(uuid.UUID(int=r.getrandbits(128), version=4)),
    "hex digest": hex_digest,
    "date": lambda r: r.choice([f"{date(r):%Y-%m-%d}", date(r).isoformat(), f"{date(r):%Y-%m-%dT%H:%M:%SZ}"]),
    "env var": lambda r: "_".join(w.upper() for w in [r.choice(["EXPCTL_KEY", "PARTNER", "BYOK"]), slug(r, 2)])
    .replace("-", "_"),
    "secret path": lambda r: f"/run/secrets/{slug(r, 2)}",
    "short base64": short_base64,
    "label": lambda r: r.choice(["control", "treatment", "canary", f"arm-{r.randint(1, 9)}", slug(r, 1)]),
}


def realistic_values() -> dict[str, list[str]]:
    rng = random.Random(SEED)
    return {name: [make(rng) for _ in range(PER_CATEGORY)] for name, make in CATEGORIES.items()}


def test_false_positive_rate_on_realistic_values() -> None:
    values = realistic_values()
    total = sum(map(len, values.values()))
    flagged = {name: [v for v in items if find_key_like(v) is not None] for name, items in values.items()}
    count = sum(map(len, flagged.values()))
    print(f"\nkey detector false positives: {count}/{total} realistic key-free values ({count / total:.2%})")
    for name, items in flagged.items():
        print(f"  {name:13} {len(items)}/{len(values[name])}" + (f"  e.g. {items[0]!r}" if items else ""))
    assert total >= 2000
    assert count == 0, {name: items[:3] for name, items in flagged.items() if items}


@pytest.mark.parametrize("prefix", sorted(FAKE_KEYS))
def test_detection_rate_on_fake_keys(prefix: str) -> None:
    rng = random.Random(f"{SEED}-{prefix}")
    keys = [fake_key(prefix, rng) for _ in range(100)]
    samples = [(embed_name, embed(key)) for key in keys for embed_name, embed in EMBEDDINGS.items()]
    missed = [(name, sample) for name, sample in samples if find_key_like(sample) is None]
    misnamed = [sample for _, sample in samples if find_key_like(sample) not in (None, kind_of(prefix))]
    rate = 1 - len(missed) / len(samples)
    print(f"\nkey detector detection rate for {prefix!r}: {len(samples) - len(missed)}/{len(samples)} ({rate:.0%})")
    assert missed == []
    assert misnamed == []


@pytest.mark.parametrize("length", [32, 40, 64])
def test_detection_rate_on_prefixless_random_tokens(length: int) -> None:
    """Keys without a known prefix are only caught by entropy: short ones sometimes slip through."""
    rng = random.Random(f"{SEED}-{length}")
    alphabets = {"alnum": ALNUM, "url-safe": URLSAFE, "base64": ALNUM + "+/"}
    tokens = [_mixed(rng, alphabet, length) for alphabet in alphabets.values() for _ in range(400)]
    caught = sum(find_key_like(token) is not None for token in tokens)
    print(f"\nkey detector detection rate for random {length}-char tokens: {caught}/{len(tokens)} "
          f"({caught / len(tokens):.1%})")
    assert caught / len(tokens) >= {32: 0.97, 40: 0.99, 64: 1.0}[length]
