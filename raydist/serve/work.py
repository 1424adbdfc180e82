"""What a server replica does with requests, no Ray: batches of uploaded files go through the
batch pipeline's own functions (`decode_batch` -> `EncodeBatch` / `CompressBatch` ->
`split_tables` / `split_codes`), so a served file gets exactly the rows `raydist embed` and
`raydist compress` write for it. Each method takes a list (one item per request) and returns one
result per item: a dict, or `{"error": {...}}` for a request that failed alone (bad audio).

    w = Worker("runs/a/model.pt")
    [res] = w.embed([Upload(wav_bytes, frames=True)])   # res["clip"]["embedding"], res["segments"], ...
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from raydist.pipeline.decode import decode_batch

MAX_VIEW_COLUMNS = 1200  # log-mel columns sent to the page's clip view (time is pooled above this)


@dataclass(frozen=True)
class Upload:
    """One request's audio: the file's bytes (any format the decoder reads)."""

    data: bytes
    frames: bool = False  # also return frames, segments and events
    name: str = "request"  # what error messages and the `uri` column call it (never opened)


def _inputs(uploads: list[Upload]) -> pa.Table:
    n = len(uploads)
    return pa.table(
        {"id": [str(i) for i in range(n)], "uri": [u.name for u in uploads], "label": [None] * n, "split": [None] * n},
        schema=pa.schema([(c, pa.string()) for c in ("id", "uri", "label", "split")]),
    )


def _error(row: dict) -> dict:
    return {"error": {"stage": row["stage"], "type": row["error_type"], "message": row["message"]}}


def _row(r: dict) -> dict:
    """A result row without its batch-local id (the caller knows which request it is)."""
    return {k: v for k, v in r.items() if k != "id"}


def _by_id(table: pa.Table) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for r in table.to_pylist():
        out.setdefault(r["id"], []).append(r)
    return out


class Worker:
    """One loaded model serving embed, compress, decompress and clip views. `configs`: the output
    and segment settings of the embeddings it must match (an index records them)."""

    def __init__(
        self,
        model_uri: str,
        configs: dict[str, Any] | None = None,
        storage_options: dict | None = None,
        device: str = "cpu",
    ):
        from raydist.codec.codec import Codec
        from raydist.pipeline.compress import CompressBatch
        from raydist.pipeline.embed import EncodeBatch

        self.configs = configs or {}
        self.encoder = EncodeBatch(model_uri, self.configs, storage_options, device)
        self.compressor = CompressBatch(model_uri, self.configs, storage_options, device, loaded=self.encoder.m)
        self.codec = Codec(self.encoder.m)
        self.m = self.encoder.m

    def info(self) -> dict:
        m = self.m
        return {
            "checkpoint_sha256": m.checkpoint_id,
            "vae_sha256": m.vae_id,
            "sample_rate": m.features.sample_rate,
            "latent_rate": m.latent_rate,
            "latent_dim": m.vae.cfg.latent_dim,
        }

    def _decoded(self, uploads: list[Upload]) -> pa.Table:
        return decode_batch(_inputs(uploads), self.m.features.sample_rate, sources=[u.data for u in uploads])

    def embed(self, uploads: list[Upload]) -> list[dict]:
        """Clip rows (and with `frames`, the frames row, segments and events) as `raydist embed`
        writes them, one result per upload."""
        return self._embedded(self._decoded(uploads), uploads)

    def _embedded(self, decoded: pa.Table, uploads: list[Upload]) -> list[dict]:
        from raydist.pipeline.embed import split_tables

        tables = split_tables(self.encoder(decoded), self.configs)
        got = {k: _by_id(tables[k]) for k in ("clips", "frames", "segments", "events", "errors")}
        out = []
        for i, u in enumerate(uploads):
            key = str(i)
            if key in got["errors"]:
                out.append(_error(got["errors"][key][0]))
                continue
            res: dict[str, Any] = {"clip": _row(got["clips"][key][0])}
            if u.frames:
                res["frames"] = _row(got["frames"][key][0])
                res["segments"] = [_row(r) for r in got["segments"].get(key, [])]
                res["events"] = [_row(r) for r in got["events"].get(key, [])]
            out.append(res)
        return out

    def compress(self, uploads: list[Upload]) -> list[dict]:
        """Codec rows as `raydist compress` writes them; `codes` as base64."""
        from raydist.pipeline.compress import split_codes

        tables = split_codes(self.compressor(self._decoded(uploads)), self.configs)
        codes, errors = _by_id(tables["codes"]), _by_id(tables["errors"])
        out = []
        for i in range(len(uploads)):
            if str(i) in errors:
                out.append(_error(errors[str(i)][0]))
                continue
            row = _row(codes[str(i)][0])
            row["codes"] = base64.b64encode(row["codes"]).decode()
            out.append(row)
        return out

    def decompress(self, rows: list[dict]) -> list[dict]:
        """Codec rows (as `compress` returns them) -> {"wav": bytes} at the source's rate and length,
        or an error naming what is wrong with the row."""
        import soundfile as sf

        from raydist.codec.format import CodecError

        out: list[dict] = []
        for row in rows:
            try:
                row = {**row, "codes": base64.b64decode(row["codes"], validate=True)}
                [wave] = self.codec.decode_many([row])
                buf = io.BytesIO()
                sf.write(buf, wave, row["sample_rate"], format="WAV", subtype="PCM_16")
                out.append({"wav": buf.getvalue()})
            except (CodecError, KeyError, TypeError, ValueError) as e:
                what = f"missing field {e}" if isinstance(e, KeyError) else str(e)
                out.append({"error": {"stage": "decompress", "type": type(e).__name__, "message": what}})
        return out

    def view(self, upload: Upload) -> dict:
        """One clip for the page: its log-mel (bytes 0-255 per cell, base64, mel bands bottom-up)
        with the events and segments `embed` finds in it."""
        import torch

        decoded = self._decoded([upload])
        [res] = self._embedded(decoded, [Upload(upload.data, frames=True, name=upload.name)])
        if "error" in res:
            return res
        wave = np.asarray(decoded.column("wave")[0].values, np.float32)
        with torch.inference_mode():
            logmel = self.m.logmel(torch.from_numpy(wave)[None].to(next(self.m.vae.parameters()).device))[0]
        x = logmel.float().cpu().numpy()  # (n_mels, T)
        pool = max(1, -(-x.shape[1] // MAX_VIEW_COLUMNS))
        t = x.shape[1] // pool * pool or x.shape[1]
        x = x[:, :t].reshape(x.shape[0], -1, pool).mean(-1) if pool > 1 else x
        lo, hi = float(np.percentile(x, 2)), float(x.max())
        cells = np.clip((x - lo) / max(hi - lo, 1e-6) * 255, 0, 255).astype(np.uint8)
        return {
            "duration_s": res["clip"]["duration_s"],
            "n_mels": int(cells.shape[0]),
            "columns": int(cells.shape[1]),
            "logmel": base64.b64encode(cells.tobytes()).decode(),
            "events": [{k: r[k] for k in ("start_s", "end_s", "boundary_score")} for r in res["events"]],
            "segments": [{k: r[k] for k in ("start_s", "end_s", "boundary_score")} for r in res["segments"]],
        }


__all__ = ["Upload", "Worker"]
