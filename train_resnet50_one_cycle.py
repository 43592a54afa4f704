"""ResNet-50 v1.5 with the one-cycle policy, as the ResNet-50 module's documentation runs it:

    python train_resnet50_one_cycle.py --find_lr --epochs 20
    python train_resnet50_one_cycle.py --dataset CIFAR100 --num_classes 100 --epochs 30
    python train_resnet50_one_cycle.py --dataset custom --data_dir /path/to/data --num_classes 10 --batch_size 128 --find_lr --epochs 50

It is ``main.py --model resnet50`` with the same options (``python main.py --help`` lists them); on
CIFAR the net gets the CIFAR stem and the ``recipes.RESNET50_CIFAR`` settings.
"""
import sys

import main as command_line


def main(argv=None):
    """Run ``main.py`` with ``--model resnet50`` unless another model is named."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command_line.main(argv if "--model" in argv else ["--model", "resnet50", *argv])


if __name__ == "__main__":
    main()
