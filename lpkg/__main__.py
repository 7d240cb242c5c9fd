from lpkg.cli import main

main()
