"""What an alert says: one result in detail, or every problem of a run (or the rejected
requests) in one message, with the commands that run the check again."""

from __future__ import annotations

import json
from typing import Any

from shared.messages import VerifyResult

MAX_NAMES = 10
MAX_LINES = 40  # entries listed in one message; the rest are counted
ICONS = {
    "mismatch": ":x:",
    "incomplete": ":hourglass:",
    "rejected": ":no_entry:",
    "failed": ":rotating_light:",
    "restore_failed": ":rotating_light:",
}


def rerun_commands(result: VerifyResult) -> list[str]:
    """The commands that run the check again for this result (none without a run id)."""
    if not result.run_id:
        return []
    if result.status == "restore_failed" and result.source and result.destination:
        # the restore drill: the same restore by hand, then the copy's own check
        return [
            f"offsite restore {result.run_id} --from {result.destination} --table {result.source.label} "
            "--to PROJECT.DATASET.TABLE --staging-bucket BUCKET --dry-run",
            f"offsite verify {result.run_id} --destination {result.destination}",
        ]
    request: dict[str, str] = {"run_id": result.run_id}
    cli = f"offsite verify {result.run_id}"
    if result.destination:
        request["destination"] = result.destination
        cli += f" --destination {result.destination}"
    body = json.dumps(request, separators=(",", ":"))
    return [cli, f"gcloud pubsub topics publish verify-requests --message='{body}'"]


def source_label(result: VerifyResult) -> str | None:
    return result.source.label if result.source else None


def message(result: VerifyResult) -> dict[str, Any]:
    """The Slack message of one result (``text`` in Slack's mrkdwn)."""
    label = source_label(result)
    head = f"{ICONS.get(result.status, ':warning:')} *offsite {result.stage or 'verify'}: {result.status}*"
    where = []
    if result.run_id:
        where.append(f"run `{result.run_id}`")
    if label:
        where.append(label + (f" ({result.date})" if result.date else ""))
    if result.destination:
        where.append(f"→ `{result.destination}`")
    lines = [head + (" — " + " ".join(where) if where else "")]
    for title, names in result.differences():
        if names:
            shown = ", ".join(names[:MAX_NAMES]) + (f" … (+{len(names) - MAX_NAMES})" if len(names) > MAX_NAMES else "")
            lines.append(f"{title} ({len(names)}): {shown}")
    if result.check:
        lines.append(
            f"check: {result.check} · files {result.files_present}/{result.files_expected}"
            f" · bytes {result.bytes_present}/{result.bytes_expected} · self-heal attempts: {result.heal_attempts}"
        )
    if result.reason:
        lines.append(f"reason: {result.reason[:1500]}")
    if result.message_id:
        lines.append(f"message: {result.message_id}")
    commands = rerun_commands(result)
    if commands:
        lines.append("re-run: `" + commands[0] + "`")
        lines.append("    or: `" + commands[1] + "`")
    return {"text": "\n".join(lines)}


def summary_message(results: list[VerifyResult]) -> dict[str, Any]:
    """One message for several results of one run (or the rejected-requests digest): a line each."""
    if len(results) == 1:
        return message(results[0])
    run_id = results[0].run_id
    counts: dict[str, int] = {}
    for result in results:
        counts[result.status] = counts.get(result.status, 0) + 1
    tally = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    head = (
        f"*offsite: run `{run_id}` — {tally}*" if run_id else f"*offsite: {len(results)} rejected requests — {tally}*"
    )
    lines = [head]
    for result in results[:MAX_LINES]:
        lines.append(_line(result))
    if len(results) > MAX_LINES:
        lines.append(f"… and {len(results) - MAX_LINES} more")
    if run_id:
        lines.append(f"re-run: `offsite verify {run_id}`")
    return {"text": "\n".join(lines)}


def _line(result: VerifyResult) -> str:
    where = " ".join(
        part
        for part in (
            source_label(result) or "",
            f"→ `{result.destination}`" if result.destination else "",
            f"({result.stage})" if result.stage and not result.run_id else "",
        )
        if part
    )
    problems = [
        f"{title} {len(names)}"
        for title, names in (
            ("missing", result.missing),
            ("extra", result.extra),
            ("size differs", result.size_differs),
            ("hash differs", result.hash_differs),
        )
        if names
    ]
    detail = ", ".join(problems) or (result.reason or "")[:300]
    ident = f" [{result.message_id}]" if result.message_id and not result.run_id else ""
    return f"{ICONS.get(result.status, ':warning:')} {result.status} {where}: {detail}{ident}".replace("  ", " ")
