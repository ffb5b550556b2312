from imts.cli.main import app

if __name__ == "__main__":  # not when a spawned helper process imports it
    app()
