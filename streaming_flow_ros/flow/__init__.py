"""Flow math (torch only): time grid, conditional paths, steppers, losses."""
