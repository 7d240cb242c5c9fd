"""The zip: reading archives safely, writing them deterministically, unpacking, and which installed
distribution owns a member. May import the core only (errors, report, runtimes, names, files)."""
