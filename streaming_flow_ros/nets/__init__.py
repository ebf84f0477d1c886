"""Networks (torch only): time embedding, observation encoders, velocity field."""
