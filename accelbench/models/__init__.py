"""Reference model zoo (issue 3): specs of builder, dataset, quality metric and target."""
