"""The commands as thin orchestrations over the stages: build, verify, layer, lock, up-to-date records and
cdk.out. May import every stage; no stage imports a command."""
