"""The LR range test alone, as the ImageNet LR finder's documentation runs it:

    python run_lr_finder.py --batch_size 256 --lr_start 1e-07 --lr_end 10 --lr_iter 1000 --output_dir ./outputs
    python run_lr_finder.py --dataset imagenet1k --batch_size 32 --max_samples 2000

It is ``main.py --find_lr`` with the same options (``python main.py --help`` lists them); the plot, the
log and ``suggested_lr.json`` go to ``--output_dir`` (or beside ``--lr_plot``).
"""
import sys

from main import main

if __name__ == "__main__":
    main(["--find_lr", *sys.argv[1:]])
