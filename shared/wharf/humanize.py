"""Docker's human wording of durations, shared by the CLI, the daemon's API and the gateway."""

from __future__ import annotations


def human_duration(seconds: float) -> str:
    """go-units ``HumanDuration``: "Less than a second", "About an hour", "3 days"…"""
    secs, minutes = int(seconds), int(seconds) // 60
    hours = int(seconds / 3600 + 0.5)  # go-units rounds hours, not seconds or minutes
    steps: list[tuple[bool, str]] = [
        (secs < 1, "Less than a second"),
        (secs == 1, "1 second"),
        (secs < 60, f"{secs} seconds"),
        (minutes == 1, "About a minute"),
        (minutes < 60, f"{minutes} minutes"),
        (hours == 1, "About an hour"),
        (hours < 48, f"{hours} hours"),
        (hours < 24 * 7 * 2, f"{hours // 24} days"),
        (hours < 24 * 30 * 2, f"{hours // 24 // 7} weeks"),
        (hours < 24 * 365 * 2, f"{hours // 24 // 30} months"),
    ]
    return next((text for hit, text in steps if hit),
                f"{int(seconds / 3600) // 24 // 365} years")
