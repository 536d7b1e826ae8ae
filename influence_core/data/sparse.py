"""Sparse model inputs (issue 18, text at 100k rows): TF-IDF rows kept as a scipy CSR matrix, read dense a batch at a
time.

A TF-IDF row has a few dozen nonzeros in thousands of columns: 64,000 rows × 4,096 columns is 1 GB as dense float32
and about 13 MB as CSR (8 bytes a nonzero). `SparseFeatures` is what a `Split` reads such inputs from, as it reads
`StoredFeatures` from disk: `read` returns dense float32 rows (bit-equal to ``matrix.toarray()``), so every method
scores unchanged on batches and memory follows the batch size; `torch_sparse` hands the whole matrix to code that is
linear in the inputs (the full-batch trainer of a linear model, `models/sparse_linear.py`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
import torch

from ..errors import InfluenceError


def as_csr(matrix) -> sp.csr_matrix:
    """``matrix`` (any scipy sparse matrix) as a float32 CSR matrix with sorted, summed indices."""
    csr = sp.csr_matrix(matrix, dtype=np.float32)
    csr.sum_duplicates()
    csr.sort_indices()
    return csr


@dataclass(frozen=True, eq=False)
class SparseFeatures:
    """float32 model inputs kept as CSR: the rows ``rows`` (None = all, in order) of ``matrix``."""

    matrix: sp.csr_matrix
    rows: np.ndarray | None = None
    _digest: list = field(default_factory=list, repr=False)  # the matrix's content hash, once computed

    def __post_init__(self) -> None:
        if not sp.issparse(self.matrix) or self.matrix.ndim != 2:
            raise InfluenceError("sparse features must be a 2-D scipy sparse matrix")
        if self.matrix.format != "csr" or self.matrix.dtype != np.float32:
            object.__setattr__(self, "matrix", as_csr(self.matrix))
        if self.rows is not None:
            object.__setattr__(self, "rows", np.asarray(self.rows, dtype=np.int64))

    def __len__(self) -> int:
        return self.matrix.shape[0] if self.rows is None else len(self.rows)

    @property
    def shape(self) -> tuple[int, ...]:
        """The shape of the dense float32 tensor `read` returns for all rows."""
        return (len(self), int(self.matrix.shape[1]))

    @property
    def nnz(self) -> int:
        return int(self.matrix.nnz if self.rows is None else self.csr().nnz)

    def csr(self, index: slice | np.ndarray | torch.Tensor | list[int] | None = None) -> sp.csr_matrix:
        """The CSR rows at ``index`` (positions in this view; None = all)."""
        if index is None:
            index = slice(None)
        if isinstance(index, torch.Tensor):
            index = index.cpu().numpy()
        if not isinstance(index, slice):
            index = np.asarray(index, dtype=np.int64)
            if len(index) and (index.min() < -len(self) or index.max() >= len(self)):
                raise IndexError(f"row index out of range for {len(self)} rows")
        if self.rows is not None:
            index = self.rows[index]
        elif isinstance(index, slice) and index == slice(None):
            return self.matrix
        return self.matrix[index]

    def read(self, index: slice | np.ndarray | torch.Tensor | list[int] | None = None) -> torch.Tensor:
        """The dense float32 inputs of rows ``index`` (positions in this view; None = all)."""
        return torch.from_numpy(np.ascontiguousarray(self.csr(index).toarray(), dtype=np.float32))

    def subset(self, index: np.ndarray | torch.Tensor) -> "SparseFeatures":
        """A view of the rows at ``index`` (nothing copied)."""
        index = np.asarray(index.cpu().numpy() if isinstance(index, torch.Tensor) else index, dtype=np.int64)
        return SparseFeatures(self.matrix, index if self.rows is None else self.rows[index], self._digest)

    def torch_sparse(self, device: torch.device | str = "cpu") -> torch.Tensor:
        """All rows as a torch sparse COO tensor (coalesced: CSR order is row-major), for products X @ W."""
        m = self.csr().tocoo()
        indices = torch.from_numpy(np.vstack([m.row, m.col]).astype(np.int64))
        return torch.sparse_coo_tensor(indices, torch.from_numpy(m.data), m.shape, is_coalesced=True,
                                       check_invariants=True).to(device)

    def token(self) -> bytes:
        """What identifies these inputs: a hash of the matrix (its shape, index arrays and values) and the rows."""
        if not self._digest:
            m = self.matrix
            h = hashlib.sha256(f"csr|{m.shape}".encode())
            for a in (m.indptr.astype(np.int64), m.indices.astype(np.int64), m.data):
                h.update(np.ascontiguousarray(a).data)
            self._digest.append(h.digest())
        h = hashlib.sha256(self._digest[0])
        if self.rows is not None:
            h.update(self.rows.data)
        return h.digest()
