"""``python -m controller`` runs ``retrainctl``."""

from controller.cli import main

if __name__ == "__main__":
    main()
