"""What to build: a function folder (or a project's declarations) -> a build plan with its handler, its
requirements and the first-party code its imports reach. May import the core and lpkg.probe.sources."""
