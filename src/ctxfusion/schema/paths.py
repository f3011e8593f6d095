"""The run directory's file names, defined once for the writer and the reader."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

RESULTS_CSV = "results.csv"
RESULTS_JSON = "results.json"
DIFFERENCES_CSV = "differences.csv"
WEIGHTS_CSV = "weights.csv"
PCA_CSV = "pca.csv"
RUN_JSON = "run.json"
CONFIG_YAML = "config.yaml"
CLAIMS_CSV = "claims.csv"
CLAIMS_MD = "claims.md"
REPORT_HTML = "report.html"
#: folder of example images (Fig. 3b's blur example); figures are PNGs at the top level
EXAMPLES_DIR = "examples"
FIGURE_SUFFIX = ".png"


@dataclass(frozen=True)
class RunPaths:
    """Where each file of one run directory lives (``root``: the run directory)."""

    root: Path

    @property
    def results_csv(self) -> Path:
        return self.root / RESULTS_CSV

    @property
    def results_json(self) -> Path:
        return self.root / RESULTS_JSON

    @property
    def differences_csv(self) -> Path:
        return self.root / DIFFERENCES_CSV

    @property
    def weights_csv(self) -> Path:
        return self.root / WEIGHTS_CSV

    @property
    def pca_csv(self) -> Path:
        return self.root / PCA_CSV

    @property
    def run_json(self) -> Path:
        return self.root / RUN_JSON

    @property
    def config_yaml(self) -> Path:
        return self.root / CONFIG_YAML

    @property
    def claims_csv(self) -> Path:
        return self.root / CLAIMS_CSV

    @property
    def claims_md(self) -> Path:
        return self.root / CLAIMS_MD

    @property
    def report_html(self) -> Path:
        return self.root / REPORT_HTML

    @property
    def examples_dir(self) -> Path:
        return self.root / EXAMPLES_DIR

    def figure(self, stem: str) -> Path:
        """A figure's PNG (``stem`` e.g. ``fig4a`` or ``figT_tradeoff_coco_all``)."""
        return self.root / f"{stem}{FIGURE_SUFFIX}"

    def blur_example(self, dataset: str) -> Path:
        """Fig. 3b's example image of ``dataset`` (clean | blurred)."""
        return self.examples_dir / f"blur_example_{dataset}{FIGURE_SUFFIX}"
