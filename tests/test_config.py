"""Configuration: defaults, partial overrides, environment overrides, and precise errors."""

import pytest

from caper_edge import config
from caper_edge.errors import ConfigError


def test_defaults_load_and_are_frozen():
    cfg = config.load()
    assert cfg.preprocess.size == (640, 640)
    with pytest.raises(AttributeError):
        cfg.preprocess.size = (1, 1)  # type: ignore[misc]


def test_partial_file_overrides_key_by_key(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text("[preprocess]\nsize = [320, 320]\n")
    cfg = config.load(f)
    assert cfg.preprocess.size == (320, 320)
    assert cfg.preprocess.pad_value == 114  # untouched keys keep their defaults


def test_environment_overrides_file(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text("[preprocess]\npad_value = 0\n")
    cfg = config.load(f, environ={"CAPER_EDGE__PREPROCESS__PAD_VALUE": "7"})
    assert cfg.preprocess.pad_value == 7


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("[preprocess]\nsize = [320]\n", "preprocess.size"),
        ("[preprocess]\nsize = 'big'\n", "preprocess.size"),
        ("[preprocess]\npad_value = 300\n", "preprocess.pad_value = 300"),
        ("[preprocess]\ndtype = 'int8'\n", "preprocess.dtype = 'int8'"),
        ("[preprocess]\nsizes = [1, 1]\n", "unknown config key preprocess.sizes"),
        ("[nosuchsection]\na = 1\n", "unknown config key nosuchsection"),
        ("[preprocess\n", "not valid TOML"),
        ("[fusion]\nresighted_wait_s = -0.4\n", "fusion.resighted_wait_s = -0.4"),
        ("[fusion]\ncensus_ends_resighted_wait = 'yes'\n", "fusion.census_ends_resighted_wait"),
        ("[fusion]\nextra_other_look_share = 1.0\n", "fusion.extra_other_look_share = 1.0"),
        ("[fusion]\nother_look_evidence = 1\n", "fusion.other_look_evidence"),
        ("[fusion]\nreread_window_s = -1\n", "fusion.reread_window_s = -1"),
        ("[fusion]\nalarm_return_window_s = -1\n", "fusion.alarm_return_window_s = -1"),
        ("[fusion]\nrevise_wait_s = -0.5\n", "fusion.revise_wait_s = -0.5"),
        ("[fusion]\nspare_hand_prior = -0.1\n", "fusion.spare_hand_prior = -0.1"),
        ("[fusion]\nspare_hand_prior = 0.95\n", "fusion.spare_hand_prior = 0.95: expected a probability in [0, 1 - extra_unit_prior = 0.9)"),
        ("[fusion]\nhand_lead_s = -1\n", "fusion.hand_lead_s = -1"),
        ("[fusion]\nreread_min_posterior = 1.5\n", "fusion.reread_min_posterior = 1.5"),
        ("[fusion]\nglimpse_weak_fresh_iou = 1.2\n", "fusion.glimpse_weak_fresh_iou = 1.2"),
        ("[fusion]\nputback_after_swap = 'no'\n", "fusion.putback_after_swap"),
        ("[fusion]\nspare_glimpse_weight = -0.5\n", "fusion.spare_glimpse_weight = -0.5"),
        ("[fusion]\nglimpse_stale_iou = 1.5\n", "fusion.glimpse_stale_iou = 1.5"),
        ("[fusion]\ntwin_max_dist = -0.1\n", "fusion.twin_max_dist = -0.1"),
        ("[fusion]\ncarried_look_resighted = 2\n", "fusion.carried_look_resighted"),
        ("[fusion]\nglimpse_weak_resighted = 'yes'\n", "fusion.glimpse_weak_resighted"),
    ],
)
def test_bad_values_name_key_and_value(tmp_path, text, fragment):
    f = tmp_path / "c.toml"
    f.write_text(text)
    with pytest.raises(ConfigError, match=None) as info:
        config.load(f)
    assert fragment in str(info.value)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="does-not-exist.toml"):
        config.load(tmp_path / "does-not-exist.toml")
