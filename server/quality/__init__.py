"""Quality control: gold answers and what raters score on them (issue 10)."""
