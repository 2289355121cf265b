"""Hypothesis strategies for request bodies, built from the contract."""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st

from contract_tests.spec import Contract


def examples(count: int) -> int:
    """A property's example count: *count* on a profile of hypothesis' default 100 examples
    (ci, dev: plugin.py), in proportion on another, so that the quick profile's 5 make 60 into
    3. Read when the test runs, after the profile is loaded; a bare ``max_examples=60`` would
    win over every profile."""
    profile = settings.default
    assert profile is not None  # hypothesis always has one loaded
    return max(1, round(count * profile.max_examples / 100))


prompts = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"]), min_size=1, max_size=120
).filter(lambda text: text.strip())


def sizes(contract: Contract, field: str):
    low, high, step = contract.size_range(field)
    # Mostly small images (cheap to make and decode), always with both bounds in reach.
    return st.one_of(
        st.sampled_from([low, high]),
        st.integers(low // step, min(high, 768) // step).map(lambda n: n * step),
    )


def steps_around_cap(max_steps: int):
    """Step counts near the edges of 1..max_steps, and far outside them."""
    return st.one_of(
        st.sampled_from([0, 1, max_steps, max_steps + 1]),
        st.integers(-3, max_steps + 3),
        st.integers(max_steps + 1, 10**12),
        st.integers(-(10**12), 0),
    )


@st.composite
def valid_bodies(draw, contract: Contract, model: str | None = None):
    """A body the contract says must succeed for a key whose plan includes the model."""
    body = {"prompt": draw(prompts)}
    if model is None:
        model = draw(st.sampled_from([None, *contract.models]))
    if model is not None:
        body["model"] = model
    info = contract.models[model or contract.default_model]
    if draw(st.booleans()):
        body["width"] = draw(sizes(contract, "width"))
    if draw(st.booleans()):
        body["height"] = draw(sizes(contract, "height"))
    choice = draw(st.sampled_from(["steps", "preset", "both", "none"]))
    if choice in ("steps", "both"):
        body["num_inference_steps"] = draw(st.integers(1, info["max_steps"]))
    if choice in ("preset", "both"):
        body["preset"] = draw(st.sampled_from(["quality", "fast"]))
    if draw(st.booleans()):
        body["seed"] = draw(st.integers(0, 2**32 - 1))
    if draw(st.booleans()):
        body["output_format"] = draw(st.sampled_from(["png", "jpeg", "webp"]))
    if draw(st.integers(0, 3)) == 0:
        body["num_images"] = draw(st.integers(1, 2))
    if info["negative_prompt"] and draw(st.booleans()):
        body["negative_prompt"] = draw(prompts)
    return body
