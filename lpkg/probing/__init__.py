"""Running the probe (lpkg/probe) with the target interpreter: sandboxed in the runtime image, or in a local
interpreter where there is no Docker; and turning what it printed into findings. May import the core, archive,
containers and probe."""
