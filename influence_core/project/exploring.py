"""Explore's views of the current model: paper Fig. 1's gradient angles, the feature map, the decision surface,
gradient similarity and nearest neighbours."""

from __future__ import annotations

import numpy as np

from ..grads import Progress
from ..keys import view_key
from ..memo import MEMORY


class ExploreMixin:
    """Explore's views of the current model. A part of `Project`."""

    def angle_view(self, impact: str = "utility", params: str = "all", progress: Progress | None = None) -> dict:
        """Paper Fig. 1's geometry of the current model (cached): IP, influence and plane coordinates per sample."""
        from ..analysis import angle_geometry

        _, dataset, fitted = self._current_model()

        def compute() -> dict:
            g = angle_geometry(dataset, fitted, impact, params, progress=progress, cache=self.cache.get_or_compute_arrays)
            return {"ip": g.ip, "influence": g.influence, "coords": g.coords, "u_xy": g.u_xy, "w_xy": g.w_xy,
                    "hessian": np.array(g.hessian)}

        return self.cache.get_or_compute_arrays("views", view_key("angles", dataset, fitted, impact=impact, params=params),
                                                compute)

    def feature_map(self, progress: Progress | None = None, seed: int = 0) -> dict:
        """A 2-D map of the model's penultimate features of the training split (cached): t-SNE up to
        `analysis.TSNE_MAX_POINTS` samples, UMAP above (``method`` in the result says which)."""
        from ..analysis import embed_2d, embedding_method, penultimate_features

        _, dataset, fitted = self._current_model()

        def compute() -> dict:
            report = progress or (lambda f, m: None)
            report(0.02, "penultimate features")
            feats = penultimate_features(fitted, dataset.train)
            xy = embed_2d(feats, seed=seed, progress=lambda f, m: report(0.1 + 0.9 * f, m))
            return {"xy": xy, "method": np.array(embedding_method(len(feats)) if feats.shape[1] > 2 else "features")}

        return self.cache.get_or_compute_arrays("views", view_key("umap", dataset, fitted, seed=seed), compute)

    def has_view(self, name: str, **settings) -> bool:
        """Whether a view ("angles" with impact / params, "umap") is cached, so a page can draw it without a job."""
        _, dataset, fitted = self._current_model()
        return self.cache.has_entry("views", view_key(name, dataset, fitted, **settings), ".npz")

    def decision_surface(self, steps: int = 120) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(xs, ys, P(class 1) on a steps × steps grid) around the training points of a two-feature data set: the
        current model's decision surface (Explore's decision boundary; a one-line error for other data)."""
        from ..analysis import decision_grid

        _, dataset, fitted = self._current_model()
        return decision_grid(fitted, dataset.train.x.numpy(), steps)

    def similar_samples(self, row: int, params: str = "all") -> np.ndarray:
        """grad ℓ_jᵀ grad ℓ_row for every training sample j: who supports (> 0) or opposes (< 0) sample ``row``."""
        from ..analysis import gradient_similarity

        _, dataset, fitted = self._current_model()
        return gradient_similarity(dataset, fitted, int(row), params)

    def nearest_samples(self, row: int, k: int = 12) -> np.ndarray:
        """Training row ``row`` and its ``k`` nearest neighbours in the model's embedding (penultimate features,
        cosine; memoised per model)."""
        from ..analysis import penultimate_features
        from ..views import nearest_rows

        _, dataset, fitted = self._current_model()
        feats = MEMORY.get("results", f"features:{fitted.fingerprint()}:{dataset.fingerprint()}",
                           lambda: penultimate_features(fitted, dataset.train))
        return nearest_rows(feats, int(row), int(k))
