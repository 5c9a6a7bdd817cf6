"""The console's widgets: charts and the per-rank table (run screens), form widgets (setup)."""
