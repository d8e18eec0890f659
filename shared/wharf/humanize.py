"""Docker's human wording of durations, shared by the CLI, the daemon's API and the gateway."""

from __future__ import annotations


def human_duration(seconds: float) -> str:
    """go-units ``HumanDuration``: "Less than a second", "About an hour", "3 days"…"""
    # Early returns, not a table of every wording: the gateway words 30,000 rows a request.
    secs = int(seconds)
    if secs < 1:
        return "Less than a second"
    if secs < 60:
        return "1 second" if secs == 1 else f"{secs} seconds"
    minutes = secs // 60
    if minutes < 60:
        return "About a minute" if minutes == 1 else f"{minutes} minutes"
    hours = int(seconds / 3600 + 0.5)  # go-units rounds hours, not seconds or minutes
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(seconds / 3600) // 24 // 365} years"
