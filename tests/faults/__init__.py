"""Fault-injection suite: every fault is injected for real and the run must fail cleanly or heal."""
