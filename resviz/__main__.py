from resviz.cli import main

main()
