from inlet.cli import main

main()
