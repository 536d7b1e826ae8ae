"""Exports and versions: the corrections table, the cleaned data set (table, images, CIFAR-N labels, labelling-tool
formats), the manifest, and immutable versions of the cleaned split (saved, compared, retrained on)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from ..errors import InfluenceError
from ..grads import Progress
from ..jobs import Job, JobHandle


class ExportMixin:
    """Exports of the cleaned data set and its saved versions. A part of `Project`."""

    def export_stem(self) -> str:
        """A file-name stem for this project's exports, from the data set's name."""
        from ..export import export_stem

        return export_stem(self.dataset().name)

    def corrections(self):
        """One row per decided sample: original index, training row, given and final label, action, every computed
        run's score (lower = more detrimental), who and when (`export.corrections_table`)."""
        from ..export import corrections_table

        dataset = self.dataset()
        return corrections_table(dataset, self.current_decisions(), self.scores())

    def manifest(self) -> dict:
        """What produced the export: data set, model, score runs, decision counts, versions, and who decided
        (``decided_by``: each reviewer's counts)."""
        from ..version import __version__
        from ..export import manifest

        state, dataset, fitted = self._current_model()
        return manifest(dataset, state.model_hash or fitted.fingerprint(),
                        [r.__dict__ | {"label": r.label} for r in state.runs], self.current_decisions(), __version__,
                        extra={"decided_by": self.reviewers()["counts"]})

    def cleaned_table(self, with_splits: bool = False):
        """Every kept training row with its original values (as in the source file) and final label, and with
        ``with_splits`` the validation and test rows and a split column (`export.cleaned_table`); a one-line error
        when the source cannot be read back."""
        from ..export import cleaned_table

        return cleaned_table(self.dataset(), self.current_decisions(), with_splits=with_splits)

    def label_column(self) -> str:
        """The source's label column (where the cleaned table writes the final labels)."""
        from ..data.originals import label_column

        return label_column(self.dataset())

    def image_zip(self) -> bytes:
        """The cleaned images in ImageFolder layout: train/ with decisions applied, val/ and test/, metadata.csv."""
        from ..export import imagefolder_zip

        return imagefolder_zip(self.dataset(), self.current_decisions())

    def cifar_labels(self) -> tuple[bytes, str, str] | None:
        """(npz bytes, source file name, label key) of a CIFAR-N label file with ``cleaned_label`` added; None for
        other data sets or when the label file is not here."""
        from ..data.cifar import label_file_of, load_label_file
        from ..export import cifar_label_file

        state, dataset = self._current()
        key = dataset.meta.get("label_key")
        path = label_file_of(dataset.name, state.dataset_kwargs.get("labels_path"))
        if key is None or path is None:
            return None
        return cifar_label_file(load_label_file(path), dataset, self.current_decisions(), key), path.name, key

    def write_export(self, files: dict[str, bytes]) -> Path:
        """Write ``files`` (name → bytes) into a new time-stamped folder under the project's ``exports/``."""
        import time

        from ..export import write_export

        self.require("decide")  # a viewer only looks (audit: they could write files into the project)
        return write_export(self.folder / "exports" / f"{self.export_stem()}-{time.strftime('%Y%m%d-%H%M%S')}", files)

    @staticmethod
    def table_bytes(frame, fmt: str) -> bytes:
        """A table as CSV (formula cells neutralised) or Parquet (raw values) bytes."""
        from ..export import table_bytes

        return table_bytes(frame, fmt)

    def export_formats(self) -> dict[str, tuple[str, str]]:
        """The labelling- and training-tool formats this project's data set can be exported to: name → (title, what
        it holds and how to load it) (`export_formats.formats_for`)."""
        from ..export_formats import formats_for

        return {n: (f.title, f.description) for n, f in formats_for(self.dataset().kind).items()}

    def export_as(self, fmt: str, all_rows: bool = False) -> bytes:
        """A zip of the data set in format ``fmt`` (`export_formats`): the cleaned training split (or, with
        ``all_rows``, every training row with its review tag), then validation and test, each sample with its
        original index, given, final and suggested label and every run's score (lower = more detrimental)."""
        from ..export_formats import check_format, export_zip, labelled_rows

        state, dataset, fitted = self._current_model()
        check_format(fmt, dataset.kind)  # before any prediction is computed
        rows = labelled_rows(dataset, self.current_decisions(), self.scores(state),
                             {s: self.predictions(s) for s in ("train", "val", "test")}, all_rows=all_rows,
                             model_version=(state.model_hash or fitted.fingerprint())[:12])
        return export_zip(fmt, rows, f"{self.export_stem()}-{fmt}", self.manifest() | {"export_format": fmt})

    def save_version(self, name: str, note: str = ""):
        """Save the current decisions as the named, immutable version ``name`` of the cleaned data set
        (`versions.make_version`: its parent is the latest version of this data); a name taken is refused."""
        from ..versions import make_version, save_version

        self.require("decide")
        state, dataset = self._current()
        earlier = self.versions()
        primary = self.primary_run(state)  # among the runs recorded with the version
        version = make_version(name, dataset, self.current_decisions(), self.source_index(), self.user,
                               tuple(r.label for r in state.runs), primary.label if primary else None,
                               earlier[-1].name if earlier else None, note)
        save_version(self.folder, version)
        return version

    def versions(self) -> list:
        """The saved versions of the current data set, oldest first (`versions.DataVersion`)."""
        from ..versions import list_versions

        return list_versions(self.folder, self.dataset().fingerprint())

    def version(self, name: str):
        from ..versions import load_version

        return load_version(self.folder, name)

    def version_diff(self, a: str | None, b: str):
        """Rows removed, restored and relabelled from version ``a`` (None: the data as loaded) to ``b``."""
        from ..versions import diff_versions

        return diff_versions(self.version(a) if a else None, self.version(b))

    def version_cleaned_table(self, name: str, with_splits: bool = True):
        """Version ``name``'s cleaned table, rebuilt exactly (`export.cleaned_table` on its decisions)."""
        from ..export import cleaned_table
        from ..versions import check_same_data, version_decisions

        version, dataset = self.version(name), self.dataset()
        check_same_data(version, dataset)
        return cleaned_table(dataset, version_decisions(version), with_splits=with_splits)

    def version_image_zip(self, name: str) -> bytes:
        """Version ``name``'s cleaned images in ImageFolder layout (`export.imagefolder_zip` on its decisions)."""
        from ..export import imagefolder_zip
        from ..versions import check_same_data, version_decisions

        version, dataset = self.version(name), self.dataset()
        check_same_data(version, dataset)
        return imagefolder_zip(dataset, version_decisions(version))

    def compare_versions(self, a: str, b: str, seeds: int = 1, progress: Progress | None = None,
                         should_stop: Callable[[], bool] | None = None) -> list[dict]:
        """Retrain the current model's architecture with its training settings on versions ``a`` and ``b`` with
        seeds 0..seeds−1 and measure test accuracy and loss (`evaluate.versions.compare_versions`)."""
        from ..evaluate.versions import compare_versions

        if isinstance(seeds, bool) or not isinstance(seeds, int) or not 1 <= seeds <= 10:
            raise InfluenceError("choose between 1 and 10 retraining seeds")
        _, dataset, fitted = self._current_model()
        if not fitted.history:
            raise InfluenceError("retraining needs the model's training settings; an uploaded model has none — "
                                 "train the model here first")
        return compare_versions(dataset, [self.version(a), self.version(b)], fitted.arch, fitted.config,
                                list(range(seeds)), progress=progress, should_stop=should_stop)

    def compare_versions_in_background(self, a: str, b: str, seeds: int = 1) -> Job:
        """`compare_versions` as the project's "versions" job; its result holds one record per training."""
        self.require("decide")  # a viewer only looks (audit: they could start retraining jobs)
        self.version(a), self.version(b)  # an unknown name: one line now, not a failed job

        def run(handle: JobHandle) -> dict:
            from ..evaluate.versions import version_table

            records = self.compare_versions(a, b, seeds, progress=lambda f, m: handle.report(f, m),
                                            should_stop=handle.should_stop)
            return {"versions": [a, b], "records": records, "table": version_table(records).to_dict("records")}

        return self.start_job("versions", f"Retraining on {a} and {b}", run)
