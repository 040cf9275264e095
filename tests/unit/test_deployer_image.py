"""`sundial run` starts only with a deploy Job image that names one build: never latest, never a guess.

A deploy Job pulls its image when it starts, which can be months after the operator started; a moving tag
would then deploy with a Sundial other than the operator's own. There is no default image to fall back to.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sundial.cli.main import main
from sundial.cli.run import deployer_image_from_env
from sundial.decide.jobs import DEPLOYER_IMAGE_ENV, malformed_image_reason, unpinned_image_reason

DIGEST = "sha256:" + "0f" * 32


@pytest.mark.parametrize(
    "image",
    [
        "ghcr.io/sundial-dev/sundial:0.1.0",
        "sundial.local/deployer:dev",  # the integration tests' image
        "localhost:5000/sundial:v2",
        f"ghcr.io/sundial-dev/sundial@{DIGEST}",
        f"ghcr.io/sundial-dev/sundial:latest@{DIGEST}",  # the digest decides what is pulled
    ],
)
def test_a_version_tag_or_a_digest_is_pinned(image: str) -> None:
    assert malformed_image_reason(image) is None
    assert unpinned_image_reason(image) is None


@pytest.mark.parametrize(
    ("image", "reason"),
    [
        ("ghcr.io/sundial-dev/sundial:latest", "moving tag latest"),
        ("ghcr.io/sundial-dev/sundial", "neither a tag nor a digest"),
        ("localhost:5000/sundial", "neither a tag nor a digest"),  # the ':' is the registry's port
        ("sundial", "neither a tag nor a digest"),
    ],
)
def test_latest_or_no_tag_is_not_pinned(image: str, reason: str) -> None:
    assert malformed_image_reason(image) is None
    assert reason in (unpinned_image_reason(image) or "")


@pytest.mark.parametrize(
    ("image", "reason"),
    [("", "empty"), ("sundial: 1.0", "white space"), ("sundial@", "no digest"), ("s@sha256", "no digest")],
)
def test_a_malformed_reference_is_named_as_such(image: str, reason: str) -> None:
    assert reason in (malformed_image_reason(image) or "")


def test_the_development_flag_allows_a_moving_tag_but_not_a_missing_or_malformed_image() -> None:
    moving = {DEPLOYER_IMAGE_ENV: "sundial.local/deployer"}
    assert deployer_image_from_env(moving, allow_unpinned=True) == "sundial.local/deployer"
    with pytest.raises(ValueError, match="latest"):
        deployer_image_from_env(moving, allow_unpinned=False)
    with pytest.raises(ValueError, match="is not set"):
        deployer_image_from_env({}, allow_unpinned=True)
    with pytest.raises(ValueError, match="white space"):
        deployer_image_from_env({DEPLOYER_IMAGE_ENV: " "}, allow_unpinned=True)


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (None, f"sundial run: {DEPLOYER_IMAGE_ENV} is not set"),
        ("ghcr.io/sundial-dev/sundial:latest", "names the moving tag latest"),
        ("ghcr.io/sundial-dev/sundial", "--allow-unpinned-deployer-image"),
    ],
)
def test_sundial_run_refuses_to_start_without_a_pinned_deployer_image(
    image: str | None,
    message: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    if image is None:
        monkeypatch.delenv(DEPLOYER_IMAGE_ENV, raising=False)
    else:
        monkeypatch.setenv(DEPLOYER_IMAGE_ENV, image)
    # Refused before any credentials are read: this kubeconfig does not even exist.
    code = main(["run", "--kubeconfig", str(tmp_path / "absent"), "--all-namespaces", "--standalone"])
    assert code == 2
    assert message in capsys.readouterr().err
