"""End-user applications built from the parts: the demo, closed-loop evaluation."""
