from b2c_monitoring.cli.main import main

main()
