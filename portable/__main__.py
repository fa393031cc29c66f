from portable.cli import main

main()
