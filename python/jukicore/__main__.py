from jukicore.cli import main

main()
