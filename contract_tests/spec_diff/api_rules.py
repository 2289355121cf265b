"""The rules that know this API: its catalog (models, plans, caps, presets), CORS, security."""

from __future__ import annotations

from collections.abc import Iterator

from contract_tests.spec_diff.changes import (
    CALLERS,
    CLIENTS,
    FRONTENDS,
    READERS,
    SUITE_KEYS,
    Change,
    Level,
    join,
    strip_docs,
)


def info_changes(old: dict, new: dict) -> Iterator[Change]:
    for key in sorted((set(old.get("info", {})) | set(new.get("info", {}))) - {"version"}):
        if old.get("info", {}).get(key) != new.get("info", {}).get(key):
            yield Change(Level.DOCS, join("/info", key), (READERS,), f"info.{key} edited")
    old_servers = {server.get("url") for server in old.get("servers", [])}
    new_servers = {server.get("url") for server in new.get("servers", [])}
    for url in sorted(old_servers - new_servers):
        yield Change(
            Level.BREAKING, "/servers", (CALLERS, CLIENTS),
            f"server {url} removed: clients configured with it lose their base URL",
        )  # fmt: skip
    for url in sorted(new_servers - old_servers):
        yield Change(Level.COMPATIBLE, "/servers", (), f"server {url} added")
    if old_servers == new_servers and old.get("servers") != new.get("servers"):
        yield Change(Level.DOCS, "/servers", (READERS,), "servers' descriptions edited")


def catalog_changes(old: dict, new: dict) -> Iterator[Change]:
    root = "x-imageapi-catalog"
    old_models = {model["id"]: model for model in old.get("models", [])}
    new_models = {model["id"]: model for model in new.get("models", [])}
    for model_id in sorted(old_models.keys() - new_models.keys()):
        yield Change(
            Level.BREAKING, join(root, "models", model_id), (CALLERS, CLIENTS),
            f"model {model_id} removed: requests naming it now get 400 unknown_model",
        )  # fmt: skip
    for model_id in sorted(new_models.keys() - old_models.keys()):
        yield Change(
            Level.COMPATIBLE, join(root, "models", model_id), (),
            f"model {model_id} added",
        )  # fmt: skip
    for model_id in sorted(old_models.keys() & new_models.keys()):
        yield from model_changes(join(root, "models", model_id), old_models[model_id],
                                 new_models[model_id])  # fmt: skip

    old_plans = {plan["id"]: plan for plan in old.get("plans", [])}
    new_plans = {plan["id"]: plan for plan in new.get("plans", [])}
    for plan_id in sorted(old_plans.keys() - new_plans.keys()):
        yield Change(
            Level.BREAKING, join(root, "plans", plan_id), (CALLERS, SUITE_KEYS),
            f"plan {plan_id} removed: its keys lose every model, and IMAGEAPI_KEY_"
            f"{plan_id.upper()} no longer names a plan",
        )  # fmt: skip
    for plan_id in sorted(new_plans.keys() - old_plans.keys()):
        yield Change(
            Level.COMPATIBLE, join(root, "plans", plan_id), (SUITE_KEYS,),
            f"plan {plan_id} added: the suite checks it when IMAGEAPI_KEY_{plan_id.upper()} is set",
        )  # fmt: skip
    for plan_id in sorted(old_plans.keys() & new_plans.keys()):
        pointer = join(root, "plans", plan_id)
        before, after = old_plans[plan_id], new_plans[plan_id]
        old_rpm, new_rpm = before.get("requests_per_minute"), after.get("requests_per_minute")
        if old_rpm != new_rpm:
            lowered = new_rpm is not None and (old_rpm is None or new_rpm < old_rpm)
            yield Change(
                Level.BREAKING if lowered else Level.COMPATIBLE,
                join(pointer, "requests_per_minute"),
                (CALLERS,) if lowered else (),
                f"plan {plan_id}'s requests_per_minute {'lowered' if lowered else 'raised'} from "
                f"{old_rpm} to {new_rpm}"
                + (": callers at the old rate now get 429" if lowered else ""),
            )  # fmt: skip
        yield from other_fields(pointer, before, after, {"id", "requests_per_minute"},
                                docs=frozenset({"name", "description"}))  # fmt: skip

    if old.get("pipelines") != new.get("pipelines"):
        for model_id in sorted(set(old.get("pipelines", {})) | set(new.get("pipelines", {}))):
            if old.get("pipelines", {}).get(model_id) != new.get("pipelines", {}).get(model_id):
                yield Change(
                    Level.COMPATIBLE, join(root, "pipelines", model_id), (),
                    f"how the diffusers backend runs {model_id} changed; answers keep their shape",
                )  # fmt: skip
    for key in sorted((set(old) | set(new)) - {"models", "plans", "pipelines"}):
        if old.get(key) != new.get(key):
            level = Level.DOCS if key == "description" else Level.BUMP
            yield Change(level, join(root, key), (READERS,) if level == Level.DOCS else (CALLERS,),
                         f"catalog's {key} changed")  # fmt: skip


def model_changes(pointer: str, old: dict, new: dict) -> Iterator[Change]:
    model_id = new["id"]
    if old.get("max_steps") != new.get("max_steps"):
        before, after = old.get("max_steps"), new.get("max_steps")
        if isinstance(before, int) and isinstance(after, int) and after < before:
            yield Change(
                Level.BREAKING, join(pointer, "max_steps"), (CALLERS, CLIENTS),
                f"max_steps of {model_id} lowered from {before} to {after}: requests with "
                f"{after + 1}-{before} steps now get 400 step_cap_exceeded",
            )  # fmt: skip
        else:
            yield Change(Level.COMPATIBLE, join(pointer, "max_steps"), (),
                         f"max_steps of {model_id} raised from {before} to {after}")  # fmt: skip
    for field, preset in (("quality_steps", "quality"), ("fast_steps", "fast")):
        if old.get(field) != new.get(field):
            yield Change(
                Level.BUMP, join(pointer, field), (CALLERS,),
                f"{field} of {model_id} changed from {old.get(field)} to {new.get(field)}: a "
                f"request that omits num_inference_steps ({preset} preset) gets another answer",
            )  # fmt: skip
    if old.get("negative_prompt") != new.get("negative_prompt"):
        withdrawn = bool(old.get("negative_prompt")) and not new.get("negative_prompt")
        yield Change(
            Level.BREAKING if withdrawn else Level.COMPATIBLE,
            join(pointer, "negative_prompt"),
            (CALLERS,) if withdrawn else (),
            f"negative-prompt support of {model_id} "
            + ("withdrawn: requests with one now get 400 negative_prompt_unsupported"
               if withdrawn else "added"),
        )  # fmt: skip
    old_plans, new_plans = set(old.get("plans", [])), set(new.get("plans", []))
    for plan in sorted(old_plans - new_plans):
        yield Change(
            Level.BREAKING, join(pointer, "plans", plan), (CALLERS, SUITE_KEYS),
            f"{model_id} removed from plan {plan}: its keys now get 403 model_not_in_plan",
        )  # fmt: skip
    for plan in sorted(new_plans - old_plans):
        yield Change(Level.COMPATIBLE, join(pointer, "plans", plan), (),
                     f"{model_id} added to plan {plan}")  # fmt: skip
    known = {"id", "max_steps", "quality_steps", "fast_steps", "negative_prompt", "plans"}
    yield from other_fields(pointer, old, new, known,
                            docs=frozenset({"name", "description", "best_for"}),
                            compatible=frozenset({"typical_latency_ms"}))  # fmt: skip


def other_fields(
    pointer: str,
    old: dict,
    new: dict,
    known: set[str],
    docs: frozenset[str] = frozenset(),
    compatible: frozenset[str] = frozenset(),
) -> Iterator[Change]:
    """The fields of a catalog entry that no rule above reads: text is documentation, a timing
    hint compatible, anything else needs a bump (an answer of the catalog changes)."""
    for key in sorted((set(old) | set(new)) - known):
        if old.get(key) == new.get(key):
            continue
        if key in docs:
            yield Change(Level.DOCS, join(pointer, key), (READERS,), f"{key} edited")
        elif key in compatible:
            yield Change(Level.COMPATIBLE, join(pointer, key), (),
                         f"{key} changed from {old.get(key)} to {new.get(key)}")  # fmt: skip
        else:
            yield Change(Level.BUMP, join(pointer, key), (CALLERS,),
                         f"{key} changed from {old.get(key)!r} to {new.get(key)!r}")  # fmt: skip


def cors_changes(old: dict, new: dict) -> Iterator[Change]:
    root = "x-imageapi-cors"
    before, after = old.get("allow_origins"), new.get("allow_origins")
    if before != after:
        old_set = {"*"} if before == "*" else set(before or [])
        new_set = {"*"} if after == "*" else set(after or [])
        reduced = "*" not in new_set and ("*" in old_set or bool(old_set - new_set))
        yield Change(
            Level.BREAKING if reduced else Level.COMPATIBLE, join(root, "allow_origins"),
            (FRONTENDS,) if reduced else (),
            f"allowed origins {'reduced' if reduced else 'widened'} from {before!r} to {after!r}"
            + (": pages on the origins left out can no longer read answers" if reduced else ""),
        )  # fmt: skip
    for key, what in (("allow_headers", "request headers"), ("expose_headers", "exposed headers")):
        old_names = {name.lower() for name in old.get(key, [])}
        new_names = {name.lower() for name in new.get(key, [])}
        for name in sorted(old_names - new_names):
            yield Change(
                Level.BREAKING, join(root, key, name), (FRONTENDS,),
                f"{name} removed from the CORS {what}: browsers "
                + ("refuse to send it" if key == "allow_headers" else "hide it from scripts"),
            )  # fmt: skip
        for name in sorted(new_names - old_names):
            yield Change(Level.COMPATIBLE, join(root, key, name), (),
                         f"{name} added to the CORS {what}")  # fmt: skip
    for key in sorted((set(old) | set(new)) - {"allow_origins", "allow_headers", "expose_headers"}):
        if old.get(key) != new.get(key):
            level = Level.DOCS if key == "description" else Level.COMPATIBLE
            yield Change(level, join(root, key), (), f"CORS {key} changed")


def security_changes(old: dict, new: dict) -> Iterator[Change]:
    old_schemes = old.get("components", {}).get("securitySchemes", {})
    new_schemes = new.get("components", {}).get("securitySchemes", {})
    for name in sorted(set(old_schemes) | set(new_schemes)):
        pointer = join("/components/securitySchemes", name)
        before, after = old_schemes.get(name), new_schemes.get(name)
        if before == after:
            continue
        if before is None:
            yield Change(Level.COMPATIBLE, pointer, (), f"security scheme {name} added")
        elif after is None:
            yield Change(Level.BREAKING, pointer, (CALLERS, CLIENTS),
                         f"security scheme {name} removed")  # fmt: skip
        elif strip_docs(before) != strip_docs(after):
            yield Change(
                Level.BREAKING, pointer, (CALLERS, CLIENTS),
                f"security scheme {name} changed: callers must send their key another way",
            )  # fmt: skip
        else:
            yield Change(Level.DOCS, pointer, (READERS,), f"security scheme {name}'s text edited")
    if old.get("security") != new.get("security"):
        yield Change(Level.BREAKING, "/security", (CALLERS, CLIENTS),
                     "the API's security requirement changed")  # fmt: skip
