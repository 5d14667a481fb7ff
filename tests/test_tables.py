"""The papers' tables: the paper's layout, its numbers, reproduced values in its scale, differences."""

import math

import pytest

from inpaintflow.tasks.tables.render import (PAPERS, REPRODUCED, Experiment, build_table, load_references, render_csv,
                                             render_latex, render_markdown)

REFS = load_references()


def table_of(paper: str, table_id: str) -> dict:
    entry = REFS[paper]
    return {**next(t for t in entry["tables"] if str(t["id"]) == table_id), "file": entry["file"]}


def summary(**values) -> dict:
    base = {"count": 10, "mae_mean": 12.5, "mse_mean": 400.0, "psnr_mean": 22.0, "psnr_of_mean_mse": 22.1,
            "ssim_mean": 0.85, "l1_mean": 0.02, "l2_mean": 0.004}
    return {**base, **values}


def experiment(label: str, dataset: str, masks: str, results: list[dict], setting=None, params=None) -> Experiment:
    return Experiment(name="exp", dataset=dataset, masks=masks, setting=setting,
                      metrics={"experiment": {"label": label}, "results": results},
                      params_count=params or {})


def result(method: str, total: dict, bins: dict | None = None, stage=None, fid=None, reason="no weights"):
    return {"method": method, "stage": stage, "dir": "output", "fid": fid, "fid_reason": reason,
            "total": total, "bins": bins or {}}


def cells(table, row_label: str) -> dict[str, str]:
    row = next(r for r in table.rows if r[0] == row_label)
    return dict(zip(table.header, row))


@pytest.mark.parametrize("paper", list(PAPERS))
def test_without_experiments_each_table_is_the_papers_own(paper):
    for ref in REFS[paper]["tables"]:
        table = build_table(paper, {**ref, "file": REFS[paper]["file"]}, [])
        rows = {tuple(str(r.get(k)) for k in ref["layout"]["rows"]) for r in ref["records"]}
        cols = {tuple(str(r.get(k)) for k in ref["layout"]["columns"]) for r in ref["records"]}
        assert len(table.rows) == len(rows), f"{paper} table {ref['id']}"
        assert len(table.header) == len(ref["layout"]["rows"]) + len(cols)
        printed = [c for r in table.rows for c in r[len(ref["layout"]["rows"]):] if c]
        assert len(printed) == len(ref["records"])  # every reference number, none invented
        assert REPRODUCED not in " ".join(" ".join(r) for r in table.rows)


def test_rmnet_table_puts_the_reproduction_and_difference_under_the_papers_row():
    t = build_table("rmnet", table_of("rmnet", "1"), [experiment(
        "R-MNet-0.4", "celeba-hq", "quickdraw",
        [result("R-MNet-0.4", summary()), result("Telea (cv2)", summary(mae_mean=20.0))])])
    labels = [r[0] for r in t.rows]
    i = labels.index("R-MNet-0.4")
    assert labels[i + 1] == f"R-MNet-0.4 {REPRODUCED}" and labels[i + 2] == "R-MNet-0.4 Δ"
    assert labels[-1] == f"Telea (cv2) {REPRODUCED}"
    paper = cells(t, "R-MNet-0.4")
    mine, delta = cells(t, f"R-MNet-0.4 {REPRODUCED}"), cells(t, "R-MNet-0.4 Δ")
    mae = next(h for h in t.header if h.startswith("MAE"))
    assert float(mine[mae]) == 12.5
    assert float(delta[mae]) == pytest.approx(12.5 - float(paper[mae]), abs=0.006)
    fid = next(h for h in t.header if h.startswith("FID"))
    assert mine[fid] == "n/a" and any("FID n/a: no weights" in n for n in t.notes)
    assert "not state" in t.notes[0]  # paper 000 does not say which PSNR form: per image used
    psnr = next(h for h in t.header if h.startswith("PSNR"))
    assert float(mine[psnr]) == 22.0


def test_a_table_of_another_dataset_takes_nothing():
    t = build_table("rmnet", table_of("rmnet", "1"), [experiment("R-MNet-0.4", "places2", "quickdraw",
                                                              [result("R-MNet-0.4", summary())])])
    assert not any(REPRODUCED in r[0] for r in t.rows)


def test_regionwise_table_adds_columns_and_prints_l1_l2_times_1000():
    bins = {"0.1-0.2": summary(l1_mean=0.0123, l2_mean=0.0021), "0.0-0.1": summary(l1_mean=0.005)}
    t = build_table("regionwise", table_of("regionwise", "2"), [experiment(
        "ours", "celeba-hq", "regionwise-contiguous",
        [result("ours", summary(), bins), result("mean fill", summary(), bins)])])
    assert t.header[:2] == ["metric", "bin"]  # the paper's orientation: metrics and bins down the side
    col = f"celeba-hq ours {REPRODUCED}"
    assert col in t.header and "celeba-hq ours Δ" in t.header and f"celeba-hq mean fill {REPRODUCED}" in t.header
    assert t.header.index(col) == t.header.index("celeba-hq ours") + 1
    row = next(r for r in t.rows if r[0].startswith("ℓ1") and r[1] == "10-20%")
    assert float(row[t.header.index(col)]) == pytest.approx(12.3, abs=0.01)
    assert "(x1000)" in row[0]
    l2 = next(r for r in t.rows if r[0].startswith("ℓ2") and r[1] == "10-20%")
    assert float(l2[t.header.index(col)]) == pytest.approx(2.1, abs=0.01)


def test_gla_table_prints_ssim_times_100():
    bins = {"0.2-0.3": summary(ssim_mean=0.9123)}
    t = build_table("gla", table_of("gla", "3"), [experiment("Ours", "celeba-hq", "free-form",
                                                              [result("Ours", summary(), bins)])])
    row = next(r for r in t.rows if r[0].startswith("SSIM") and r[1] == "20-30%")
    assert float(row[t.header.index(f"Ours {REPRODUCED}")]) == pytest.approx(91.23, abs=0.01)


def test_refinement_table_1_uses_set_psnr_and_the_matching_stage_without_baselines():
    results = [result("Inpainting & Refinement", summary(psnr_of_mean_mse=19.0), stage="before"),
               result("Inpainting & Refinement", summary(psnr_of_mean_mse=20.0), stage="after"),
               result("Telea (cv2)", summary())]
    t = build_table("refinement", table_of("refinement", "1"), [experiment("Inpainting & Refinement", "celeba", "center-square",
                                                              results, setting="1500+1500")])
    mine = cells(t, f"PSNR ↑ {REPRODUCED}")
    assert float(mine["center-square before"]) == 19.0 and float(mine["center-square after"]) == 20.0
    assert mine["left-half before"] == ""  # no experiment of this profile
    assert not any("Telea" in " ".join(r) for r in t.rows)


def test_refinement_table_2_matches_rows_by_setting_and_stage():
    refine = experiment("Inpainting & Refinement", "celeba", "center-square",
                        [result("Inpainting & Refinement", summary(mae_mean=99.0), stage="before"),
                         result("Inpainting & Refinement", summary(mae_mean=11.0), stage="after")],
                        setting="1500+1500")
    first = experiment("Inpainting", "celeba", "center-square", [result("Inpainting", summary(mae_mean=14.0))],
                       setting="1500")
    t = build_table("refinement", table_of("refinement", "2"), [refine, first])
    rows = {tuple(r[:2]): r for r in t.rows}
    mae = t.header.index(next(h for h in t.header if h.startswith("MAE")))
    assert float(rows[(f"Inpainting & Refinement {REPRODUCED}", "1500+1500")][mae]) == 11.0
    assert float(rows[(f"Inpainting {REPRODUCED}", "1500")][mae]) == 14.0
    assert (f"Inpainting {REPRODUCED}", "3000") not in rows


def test_printed_precision_follows_the_paper():
    t = build_table("refinement", table_of("refinement", "1"), [])
    mssim = cells(t, "MSSIM ↑")
    assert mssim["random-square before"] == "0.8760"  # printed with 4 decimals, trailing zero kept
    assert mssim["stripes before"] == "0.707"


def test_renderings_are_deterministic_and_escape_latex():
    t = build_table("gla", table_of("gla", "5"), [])
    assert render_csv(t) == render_csv(build_table("gla", table_of("gla", "5"), []))
    tex = render_latex(t, ["profile: demo", "code: 50% done_"])
    assert r"\begin{tabular}" in tex and r"50\% done\_" in tex
    md = render_markdown(t, ["profile: demo"])
    assert md.count("\n|") == len(t.rows) + 2
    assert not any(math.isnan(float(c)) for r in t.rows for c in r[1:] if c)


def test_a_table_may_name_the_method_differently_and_empty_baseline_rows_are_dropped():
    exp = experiment("Ours", "celeba-hq", "free-form", [result("Ours", summary()), result("mean fill", summary())],
                     params={"generator": 4_160_000})
    t = build_table("gla", table_of("gla", "4"), [exp], labels={"Ours": "Proposed"})
    labels = [r[0] for r in t.rows]
    assert labels[labels.index("Proposed") + 1] == f"Proposed {REPRODUCED}"
    assert float(cells(t, f"Proposed {REPRODUCED}")[t.header[1]]) == pytest.approx(4.16)
    assert not any("mean fill" in label for label in labels)  # no parameter count, no row
