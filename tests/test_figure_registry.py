"""Adding a figure is one registered function: the report draws it for every dataset."""

from __future__ import annotations

from pathlib import Path

from ctxfusion.report import figure_base
from ctxfusion.report.figure_base import FigureBuilder, dataset_figure, plt, run_figure
from ctxfusion.report.layout import render_figures
from test_report import make_run_dir


def test_a_registered_figure_is_drawn_per_dataset_and_per_run(tmp_path: Path,
                                                              monkeypatch) -> None:
    monkeypatch.setattr(figure_base, "DATASET_FIGURES", list(figure_base.DATASET_FIGURES))
    monkeypatch.setattr(figure_base, "RUN_FIGURES", list(figure_base.RUN_FIGURES))

    @dataset_figure(order=99)
    def count_rows(builder: FigureBuilder, dataset: str) -> None:
        rows = [r for r in builder.run.results if r.dataset == dataset]
        if dataset == "cifar10":
            return builder.skip("figX", dataset, "not for this dataset")
        fig, ax = plt.subplots()
        ax.bar([0], [len(rows)])
        builder.add(fig, "figX", dataset, f"{len(rows)} rows")

    @run_figure(order=99)
    def once(builder: FigureBuilder) -> None:
        fig, _ = plt.subplots()
        builder.add(fig, "figY", None, "once")

    run_dir = make_run_dir(tmp_path / "run")
    drawn = render_figures(run_dir)
    datasets = {r.dataset for r in drawn.produced if r.figure == "figX"}
    assert datasets and "cifar10" not in datasets
    assert all((run_dir / f"figX_{d}.png").is_file() for d in datasets)
    assert [r.figure for r in drawn.produced][-1] == "figY"  # run figures come last
    assert "figX_cifar10" in {m.name for m in drawn.missing}
    assert drawn.produced[0].figure == "fig2"  # the paper's order is kept


def test_whitebox_figure_compares_transfer_with_each_classifier_on_itself(tmp_path) -> None:
    """Fig S2 of a real run whose FGSM is crafted on fg only, every other classifier also
    attacked through its own gradient (docs/examples/offline-tinyimagenet): two panels."""
    import shutil

    from ctxfusion.report.figure_base import FigureBuilder
    from ctxfusion.report.paper.extra import whitebox_figure
    from ctxfusion.report.rundir import load_run

    example = Path(__file__).resolve().parents[1] / "docs" / "examples" / "offline-tinyimagenet"
    run_dir = tmp_path / "run"
    shutil.copytree(example, run_dir)
    builder = FigureBuilder(load_run(run_dir))
    whitebox_figure(builder, "tinyimagenet")
    assert [r.figure for r in builder.out.produced] == ["figS2"], builder.out.missing
