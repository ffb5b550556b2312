from imts.cli.main import app

app()
