"""pplex-sim: a simulated PersonaPlex / Moshi server that speaks the exact wire protocol."""
