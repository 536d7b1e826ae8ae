"""Image zips decoded in parallel (influence_core/data/image_decode.py): the same bytes as one image at a time in
order, the same one-line error for an unreadable image (the first one in the zip's order) with nothing left on
disk, at most a batch of images in memory, and as many workers as the server's settings say (capped at the CPUs)."""

from __future__ import annotations

import io
import os
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from influence_core.data import image_decode, uploads
from influence_core.data.image_decode import decode_pool, decoded_chunks
from influence_core.data.storage import arrays_in
from influence_core.errors import InfluenceError
from influence_core.server_config import ServerConfig

SIZE = 12
POOLS = [(1, "threads"), (2, "threads"), (2, "processes")]


def _png(rng, mode: str, size: tuple[int, int]) -> bytes:
    px = rng.integers(0, 256, size=(size[1], size[0], 4), dtype=np.uint8)
    img = Image.fromarray(px, "RGBA")
    img = img if mode == "RGBA" else img.convert("RGB").convert(mode)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def members() -> dict[str, bytes]:
    """40 noisy PNGs of several sizes and modes (RGB, RGBA, grey, palette) in three class folders."""
    rng = np.random.default_rng(0)
    modes = ("RGB", "RGBA", "L", "P")
    return {f"{c}/{i:02d}.png": _png(rng, modes[i % 4], (int(rng.integers(9, 40)), int(rng.integers(9, 40))))
            for c in ("ant", "bee", "cat") for i in range(14)}


def _zip(path, entries: dict[str, bytes]) -> str:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name, data in entries.items():
            z.writestr(name, data)
    return str(path)


def _server(tmp_path, monkeypatch, workers: int, pool: str) -> None:
    config = tmp_path / f"server-{workers}-{pool}.toml"
    config.write_text(f'[server]\ndecode_workers = {workers}\ndecode_pool = "{pool}"\n')
    monkeypatch.setenv("INFLUENCE_CONFIG", str(config))


def _expected(entries: dict[str, bytes]) -> np.ndarray:
    """Each image decoded by PIL directly, in the zip's sorted order: RGB, bilinear to SIZE² (what the loader does)."""
    return np.stack([np.asarray(Image.open(io.BytesIO(entries[n])).convert("RGB").resize((SIZE, SIZE), Image.BILINEAR))
                     for n in sorted(entries)])


@pytest.mark.parametrize("workers, pool", POOLS)
def test_parallel_decoding_stores_the_same_bytes_as_pil_one_image_at_a_time(members, tmp_path, monkeypatch, workers, pool):
    monkeypatch.setattr(uploads, "DECODE_BATCH", 8)  # several chunks: 2 images each with 2 workers
    _server(tmp_path, monkeypatch, workers, pool)
    path = _zip(tmp_path / "bugs.zip", members)
    with arrays_in(tmp_path / "arrays"):
        on_disk = uploads.load_image_zip(path, image_size=SIZE, on_disk=True)
    stored = np.load(on_disk.train.store.array.path)
    assert stored.dtype == np.uint8 and np.array_equal(stored, _expected(members))
    in_memory = uploads.load_image_zip(path, image_size=SIZE, on_disk=False)
    _server(tmp_path, monkeypatch, 1, "threads")
    serial = uploads.load_image_zip(path, image_size=SIZE, on_disk=False)
    for split in ("train", "val", "test"):
        assert torch.equal(getattr(in_memory, split).x, getattr(serial, split).x)


@pytest.mark.parametrize("workers, pool", POOLS)
def test_an_unreadable_image_gives_the_serial_error_and_leaves_nothing_on_disk(members, tmp_path, monkeypatch,
                                                                                workers, pool):
    """Two truncated PNGs (their headers read, their pixels not) in different chunks: the first in order is named,
    whichever worker fails first, and no array file (nor a temporary one) stays behind."""
    monkeypatch.setattr(uploads, "DECODE_BATCH", 8)
    _server(tmp_path, monkeypatch, workers, pool)
    entries = dict(members)
    for name in ("bee/03.png", "cat/12.png"):
        entries[name] = entries[name][:-30]
    path = _zip(tmp_path / "broken.zip", entries)
    folder = tmp_path / "arrays"
    folder.mkdir()
    for on_disk in (True, False):
        with arrays_in(folder), pytest.raises(InfluenceError) as err:
            uploads.load_image_zip(path, image_size=SIZE, on_disk=on_disk)
        assert str(err.value).startswith("cannot read image 'bee/03.png' in 'broken.zip': ")
        assert "\n" not in str(err.value) and list(folder.iterdir()) == []


class _CountingArchive:
    """A zip's ``read`` that counts the images read so far."""

    def __init__(self, entries: dict[str, bytes]) -> None:
        self.entries, self.reads = entries, 0

    def read(self, member) -> bytes:
        self.reads += 1
        return self.entries[member.filename]


def test_at_most_a_batch_of_images_is_read_ahead_of_the_consumer(members):
    archive = _CountingArchive(members)
    infos = [zipfile.ZipInfo(n) for n in sorted(members)]
    batch, consumed, sizes = 12, 0, []

    def decode(data, name):
        return uploads._decode(data, name, "bugs.zip", SIZE)

    for chunk in decoded_chunks(archive, infos, decode, batch, workers=2, pool="threads"):
        assert archive.reads - consumed <= batch  # this chunk, and what is decoded or in flight behind it
        consumed += len(chunk)
        sizes.append(len(chunk))
    assert consumed == len(infos) and max(sizes) == 3  # batch / (2 workers · 2 in flight each)


def test_the_worker_count_is_the_servers_capped_at_the_cpus(members, tmp_path, monkeypatch):
    _server(tmp_path, monkeypatch, 1000, "threads")
    assert decode_pool() == (os.cpu_count(), "threads")
    started = []

    class Recording(image_decode.ThreadPoolExecutor):
        def __init__(self, workers, **kwargs):
            started.append(workers)
            super().__init__(workers, **kwargs)

    monkeypatch.setattr(image_decode, "ThreadPoolExecutor", Recording)
    uploads.load_image_zip(_zip(tmp_path / "bugs.zip", members), image_size=SIZE, on_disk=False)
    assert started == ([os.cpu_count()] if os.cpu_count() > 1 else [])
    assert ServerConfig().decode_workers == 2 and ServerConfig().decode_pool == "threads"
    _server(tmp_path, monkeypatch, 0, "threads")
    assert decode_pool() == (1, "threads")
    _server(tmp_path, monkeypatch, 2, "gpu")
    with pytest.raises(InfluenceError, match=r"^decode_pool must be one of threads, processes, not 'gpu'$"):
        decode_pool()
    with pytest.raises(InfluenceError, match=r"^server config: 'decode_workers' must be int"):
        ServerConfig.from_mapping({"decode_workers": "4"})
