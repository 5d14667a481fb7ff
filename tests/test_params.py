from pathlib import Path

import pytest

from inpaintflow.params import ParamsError, load_step, validate_file

REPO = Path(__file__).resolve().parents[1]


def test_project_params_validate_under_both_profiles():
    names = validate_file(REPO / "params.yaml")
    assert "celeba-64" in names["data"] and "gla-free-form" in names["masks"]


def test_active_profile_selects_the_entry(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("profile: paper\ndata:\n  d:\n    demo: {dataset: synthetic-faces, size: 64, count: 10}\n"
                    "    paper: {dataset: celeba, size: 64, split: yeh2017}\n")
    assert load_step("data", "d", path).dataset == "celeba"
    assert load_step("data", "d", path, profile="demo").dataset == "synthetic-faces"


@pytest.mark.parametrize("entry, message", [
    ("{dataset: synthetic-faces, size: 64, count: 10, sede: 1}", r"data\.d\.demo\.sede: Extra inputs"),
    ("{dataset: synthetic-faces, size: -4, count: 10}", r"data\.d\.demo\.size: .*greater than 0"),
    ("{dataset: celebb, size: 64}", r"data\.d\.demo: .*unknown dataset 'celebb'"),
    ("{dataset: celeba, size: 64, split: nope}", r"data\.d\.demo: .*no split rule 'nope'"),
    ("{dataset: celeba-hq, size: 300, source: x}", r"sizes \(256, 512, 1024\)"),
    ("{dataset: synthetic-faces, size: 64}", r"generated: set `count`"),
])
def test_bad_values_name_the_key(tmp_path, entry, message):
    path = tmp_path / "params.yaml"
    path.write_text(f"data:\n  d:\n    demo: {entry}\n    paper: {{dataset: celeba, size: 64}}\n")
    with pytest.raises(ParamsError, match=message):
        load_step("data", "d", path)


def test_mask_params_errors_name_the_key(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("masks:\n  m:\n    demo: {family: free-form, size: 64, count: 3, bins: ['0.5-0.2']}\n"
                    "    paper: {family: fre-form, size: 64, count: 3}\n")
    with pytest.raises(ParamsError, match=r"masks\.m\.demo"):
        load_step("masks", "m", path)
    with pytest.raises(ParamsError, match=r"masks\.m\.paper: .*unknown mask family 'fre-form'"):
        load_step("masks", "m", path, profile="paper")


def test_missing_entry_and_bad_profile(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("profile: gpu\ndata: {}\n")
    with pytest.raises(ParamsError, match="profile: must be 'demo' or 'paper'"):
        load_step("data", "x", path)
    path.write_text("data: {}\n")
    with pytest.raises(ParamsError, match=r"data\.x: no such entry"):
        load_step("data", "x", path)
    with pytest.raises(ParamsError, match="not found"):
        load_step("data", "x", tmp_path / "nope.yaml")
