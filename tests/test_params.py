from pathlib import Path

import pytest

from inpaintflow.params import ParamsError
from inpaintflow.tasks.pipeline.checked_params import load_step, validate_file

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


def _project_params_with(tmp_path, edit) -> Path:
    import yaml

    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    edit(raw)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


@pytest.mark.parametrize("edit, message", [
    (lambda r: r["inpaint"]["gla-free-form"].update(masks="gla-freeform"),
     r"inpaint\.gla-free-form\.masks: 'gla-freeform' is not an entry of 'masks'"),
    (lambda r: r["inpaint"]["gla-free-form"].update(run="refinement"),
     r"inpaint\.gla-free-form\.demo\.method: 'feed-forward' cannot run train\.refinement"),
    (lambda r: r["inpaint"]["iwgan-center-square"]["demo"].update(refine_steps=3),
     r"inpaint\.iwgan-center-square\.demo: .*refine_steps: only the yeh-refine"),
    (lambda r: r["inpaint"]["iwgan-center-square"]["demo"].update(loss_weights={"alpah": 1}),
     r"inpaint\.iwgan-center-square\.demo\.loss_weights\.alpah"),
    (lambda r: r["inpaint"]["gla-free-form"].update(paper_id="glaa"),
     r"inpaint\.gla-free-form\.paper_id: 'glaa' is not a tables entry"),
    (lambda r: r["tables"]["rmnet"].update(experiments=["rmnet-celeba-hq"]),
     r"tables\.rmnet\.experiments: not set here; each inpaint entry names its paper"),
    (lambda r: r["tables"].update(extra={}), r"tables\.extra: no inpaint entry has paper_id 'extra'"),
    (lambda r: r["evaluate"]["demo"].update(batchsize=3), r"evaluate\.demo\.batchsize: Extra inputs"),
    (lambda r: r.update(evalute={}), r"evalute: unknown group"),
])
def test_experiments_and_tables_are_checked_across_groups(tmp_path, edit, message):
    with pytest.raises(ParamsError, match=message):
        validate_file(_project_params_with(tmp_path, edit))


def test_a_papers_experiments_are_the_inpaint_entries_naming_it():
    from inpaintflow.params import load_entry

    assert load_entry("tables", "iwgan", REPO / "params.yaml").experiments == ["iwgan-center-square",
                                                                               "iwgan-three-squares"]
    assert len(load_entry("tables", "refinement", REPO / "params.yaml").experiments) == 8
