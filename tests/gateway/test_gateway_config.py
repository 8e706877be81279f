"""The gateway's configuration and key store, without a socket: validation, defaults, constant-time key checks."""

from __future__ import annotations

import hmac
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from solution.gateway.auth import KeyStore, bearer_token
from solution.gateway.config import ConfigError, GatewayConfig, Principal

pytestmark = pytest.mark.stage8

BACKEND = {"server_id": "s1", "url": "http://127.0.0.1:9"}


def good(**overrides: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {"backends": [dict(BACKEND)], "keys": {"sk-1": {"tenant": "t1"}}}
    cfg.update(overrides)
    return cfg


def test_defaults_and_what_the_components_are_built_from() -> None:
    cfg = GatewayConfig.from_dict(good(tiers="standard", keys={"sk-1": {"tenant": "t1", "tier": "premium"}},
                                       retry={"max_tries": 2, "per_try_timeout": 1.5, "budget": None}))  # fmt: skip
    assert cfg.model_id == "course-model" and cfg.strategy == "power_of_choices"
    assert cfg.backends[0].capacity == 8 and cfg.backends[0].url == "http://127.0.0.1:9"
    assert cfg.queue is not None and cfg.queue.max_depth == 64
    assert cfg.tier_table().default == "free"
    assert cfg.ledger_policy().max_tries == 2 and cfg.ledger_policy().per_try_timeout == 1.5
    policy = cfg.retry_policy()
    assert policy.max_tries == 2 and policy.budget is None
    assert cfg.health_policy().interval == 1.0
    assert GatewayConfig.from_dict(good(queue=None)).queue is None


def test_a_backend_naming_presets_gets_their_latency_model_whatever_the_case() -> None:
    cfg = GatewayConfig.from_dict(good(backends=[{**BACKEND, "gpu": "h100-80gb"}, {**BACKEND, "server_id": "s2", "gpu": "A100-80GB"}]))
    fast, slow = (b.latency_model() for b in cfg.backends)
    assert fast.e2e(100, 100, 1) < slow.e2e(100, 100, 1)  # the H100 is faster


def test_the_keys_never_appear_in_the_configs_or_the_key_stores_repr() -> None:
    cfg = GatewayConfig.from_dict(good(keys={"sk-very-secret": {"tenant": "t1"}}, admin_key="adm-very-secret"))
    assert "very-secret" not in repr(cfg) and "very-secret" not in str(cfg)
    assert "very-secret" not in repr(KeyStore(cfg.keys))


@pytest.mark.parametrize("data, error, words", [
    ({"keys": {}}, ConfigError, "backends"),
    (good(backends=[]), ConfigError, "at least one"),
    (good(backends=[BACKEND, BACKEND]), ConfigError, "repeat"),
    (good(backends=[{**BACKEND, "url": "127.0.0.1:9"}]), ConfigError, "http://"),
    (good(backends=[{**BACKEND, "capacity": 0}]), ConfigError, "capacity"),
    (good(backends=[{**BACKEND, "capacity": True}]), TypeError, "capacity"),
    (good(backends=[{**BACKEND, "weight": 2}]), ConfigError, "unknown field"),
    (good(backends=[{**BACKEND, "gpu": "b200"}]), ConfigError, "unknown GPU preset"),
    (good(backends={"s1": "http://x"}), TypeError, "backends"),
    (good(colour="blue"), ConfigError, "unknown field"),
    (good(strategy="fastest"), ConfigError, "strategy"),
    (good(keys={"sk-1": {"tenant": "t1", "tier": "gold"}}), ConfigError, "tiers is null"),
    (good(tiers="standard", keys={"sk-1": {"tenant": "t1", "tier": "gold"}}), ConfigError, "not in the tier table"),
    (good(tiers="premium-only"), ConfigError, "tiers"),
    (good(keys={"sk-1": {"tenant": ""}}), TypeError, "tenant"),
    (good(keys={"sk-1": "t1"}), TypeError, "mapping"),
    (good(timeouts={"header": -1}), ConfigError, "timeouts.header"),
    (good(timeouts={"header": float("nan")}), ConfigError, "timeouts.header"),
    (good(timeouts={"read": 1}), ConfigError, "unknown field"),
    (good(queue={"max_depth": -1}), ConfigError, "max_depth"),
    (good(health={"interval": 1.0, "timeout": 5.0}), ValueError, "timeout"),
    (good(health={"every": 1.0}), TypeError, "health"),
    (good(retry={"max_tries": 0}), ValueError, "max_tries"),
    (good(retry={"max_tries": 3, "tries": 4}), TypeError, "retry"),
    (good(retry={"budget": {"ratio": 2.0}}), ValueError, "ratio"),
    (good(max_prompt_tokens=0), ConfigError, "max_prompt_tokens"),
    (good(default_max_tokens=5000), ConfigError, "default_max_tokens"),
    (good(tls={"cert": "a.pem"}), TypeError, "key"),
    (good(admin_key=""), TypeError, "admin_key"),
], ids=lambda v: v if isinstance(v, str) else None)  # fmt: skip
def test_a_bad_configuration_is_refused_with_a_message_naming_the_field(data: dict[str, Any], error: type[Exception],
                                                                        words: str) -> None:  # fmt: skip
    with pytest.raises(error) as info:
        GatewayConfig.from_dict(data)
    assert words in str(info.value)
    assert "sk-1" not in str(info.value)  # a key never appears in an error message either


def test_from_json_reads_a_file_and_names_it_when_it_is_not_json(tmp_path: Any) -> None:
    path = tmp_path / "gw.json"
    path.write_text(json.dumps(good(model_id="m")))
    assert GatewayConfig.from_json(path).model_id == "m"
    path.write_text("{backends: ")
    with pytest.raises(ConfigError, match="not valid JSON"):
        GatewayConfig.from_json(path)


def test_a_custom_tier_table_with_rate_limits() -> None:
    cfg = GatewayConfig.from_dict(good(tiers=[
        {"name": "free", "queue_class": 1, "tenant_limit": {"requests_per_minute": 2, "tokens_per_minute": None}},
        {"name": "premium", "queue_class": 2, "reserved_share": 0.25, "routing": "predictive", "default": True},
    ], keys={"sk-1": {"tenant": "t1", "tier": "free"}}))  # fmt: skip
    table = cfg.tier_table()
    assert table.default == "premium" and table.tier("free").tenant_limit.requests_per_minute == 2


@pytest.mark.parametrize("header, token", [
    ("Bearer abc", "abc"), ("bearer abc", "abc"), ("  Bearer   abc  ", "abc"), (None, None), ("", None),
    ("Bearer", None), ("Bearer ", None), ("Basic abc", None), ("Bearer a b", None), ("abc", None),
])  # fmt: skip
def test_bearer_token_parsing(header: str | None, token: str | None) -> None:
    assert bearer_token(header) == token


def test_a_lookup_compares_against_every_key_wherever_the_match_is(monkeypatch: pytest.MonkeyPatch) -> None:
    keys = {f"sk-{i}": Principal(f"t{i}") for i in range(8)}
    store = KeyStore(keys)
    calls = []
    real = hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        calls.append(1)
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", counting)
    for header in ("Bearer sk-0", "Bearer sk-7", "Bearer sk-nope", "Bearer " + "x" * 500, None):
        calls.clear()
        store.lookup(header)
        assert len(calls) == 8, header  # no early exit at a match, no shortcut for a malformed or long key
    assert store.lookup("Bearer sk-0") == Principal("t0") and store.lookup("Bearer sk-7") == Principal("t7")


@settings(max_examples=50, deadline=None)
@given(keys=st.dictionaries(st.text(min_size=1, max_size=12).filter(lambda k: k.strip() == k and " " not in k and k),
                            st.text(min_size=1, max_size=6).filter(str.strip), min_size=1, max_size=5),
       other=st.text(max_size=12))  # fmt: skip
def test_lookup_finds_exactly_the_stored_keys(keys: dict[str, str], other: str) -> None:
    store = KeyStore({k: Principal(t) for k, t in keys.items()})
    for k, t in keys.items():
        assert store.lookup(f"Bearer {k}") == Principal(t)
    if other not in keys:
        assert store.lookup(f"Bearer {other}") is None
    assert len(store) == len(keys)


def test_key_store_bad_input() -> None:
    with pytest.raises(TypeError):
        KeyStore([("sk", Principal("t"))])  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        KeyStore({"": Principal("t")})
    with pytest.raises(TypeError):
        KeyStore({"sk": "t"})  # type: ignore[dict-item]


def test_without_the_reference_least_connections_is_refused_with_what_to_pick_instead(monkeypatch: pytest.MonkeyPatch) -> None:
    """The candidate's bundle has no reference LeastConnections (stage 1's answer): a ValueError that says what to pick,
    not another rule under its name; the default strategy needs no reference."""
    import solution
    import solution.core.impl
    from solution.gateway.app import Gateway

    monkeypatch.setattr(solution.core.impl, "reference_available", lambda: False)
    with pytest.raises(ValueError, match="pick 'power_of_choices'"):
        Gateway(GatewayConfig.from_dict(good(strategy="least_connections")), impl=solution)
    gateway = Gateway(GatewayConfig.from_dict(good()), impl=solution)
    assert type(gateway.path.router.strategy).__name__ == "PowerOfChoices"
    monkeypatch.undo()
    assert type(Gateway(GatewayConfig.from_dict(good(strategy="least_connections")), impl=solution).path.router.strategy).__name__ \
        == "LeastConnections"  # with the reference (the repository), as configured
