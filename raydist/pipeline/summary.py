"""What a pipeline run did, as the commands print it: one line, or the end-of-command table."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class RunSummary:
    out: str
    inputs: int = 0
    already_done: int = 0
    retried: int = 0  # inputs with an earlier error row processed again (--retry-errors)
    dropped: int = 0  # processed, but another run committed them first
    ok: int = 0
    failed: int = 0
    audio_s: float = 0.0
    wall_s: float = 0.0
    run_id: str | None = None
    skipped_extensions: dict[str, int] = field(default_factory=dict)
    source_bytes: int = 0  # encoded size of the inputs processed
    pcm16_bytes: float = 0.0  # the same audio as 16-bit PCM at the source rate and channels
    payload_bytes: int = 0  # compress: codes + scales (raydist.codec.format.payload_bytes)
    written_bytes: dict[str, int] = field(default_factory=dict)  # per table, Parquet bytes

    @property
    def speed(self) -> float:
        """Audio seconds processed per wall-clock second."""
        return self.audio_s / self.wall_s if self.wall_s else 0.0

    def line(self, verb: str = "embedded") -> str:
        skipped = (
            f", {sum(self.skipped_extensions.values())} non-audio files not listed ({self.skipped_extensions})"
            if self.skipped_extensions
            else ""
        )
        retried = f", {self.retried} retried" if self.retried else ""
        dropped = f", {self.dropped} committed first by another run" if self.dropped else ""
        return (
            f"{verb} {self.inputs} inputs into {self.out}: {self.ok} ok, {self.failed} failed, "
            f"{self.already_done} already done{retried}{dropped}; {self.audio_s / 3600:.3f} h of audio in {self.wall_s:.1f} s "
            f"({self.speed:.0f} audio-s/s){skipped}"
        )

    def table(self, verb: str = "embedded") -> str:
        """The end-of-command summary: one line, then what was kept, skipped and written."""
        rows = [("ok", f"{self.ok}"), ("failed", f"{self.failed}" + (" (rows in errors/)" if self.failed else ""))]
        rows += [("already done", f"{self.already_done}")]
        rows += [("retried", f"{self.retried}")] if self.retried else []
        rows += [("dropped", f"{self.dropped} (committed first by another run)")] if self.dropped else []
        rows += [("audio", f"{self.audio_s / 3600:.3f} h, {self.speed:.0f} audio-s/s")]
        if self.skipped_extensions:
            rows += [
                ("not audio", ", ".join(f"{n} {ext or 'no extension'}" for ext, n in self.skipped_extensions.items()))
            ]
        if self.written_bytes:
            rows += [("written", ", ".join(f"{t} {b / 1e6:.2f} MB" for t, b in sorted(self.written_bytes.items())))]
        head = f"{verb} {self.inputs} inputs into {self.out} in {self.wall_s:.1f} s"
        return "\n".join([head, *(f"  {k:<13}{v}" for k, v in rows)])
