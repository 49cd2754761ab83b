"""Timing two or more ways of running the same work on a shared, noisy machine."""

import time


def alternating_seconds(runs: dict, rounds: int = 3, repeats: int = 5) -> dict:
    """For each of ``runs`` (name: a call that waits for its result), the smallest of ``rounds`` medians of
    ``repeats`` calls, the runs taking turns round by round so that a slower stretch of the machine falls on all of
    them, in the reverse order every other round: the run that went first read up to 15% slower on Intel's runtime."""
    best = dict.fromkeys(runs, float("inf"))
    for run in runs.values():
        run()
    for round_index in range(rounds):
        order = list(runs.items())
        for name, run in order[::-1] if round_index % 2 else order:
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                run()
                times.append(time.perf_counter() - start)
            best[name] = min(best[name], sorted(times)[repeats // 2])
    return best
