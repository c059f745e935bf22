"""A small convcore.torch model trained by SGD on fixed global batches, either in one process
(`train_single`) or as one rank of DistributedDataParallel with the gloo backend (run as a
script: python torch_ddp_worker.py RANK WORLD_SIZE STORE_FILE OUT_FILE). test_torch_ddp.py
compares the two."""
import sys

import torch

import convcore
import convcore.torch as cct

STEPS, GLOBAL_BATCH = 3, 8


def build_model():
    torch.manual_seed(0)
    return torch.nn.Sequential(
        cct.Conv2d(3, 6, 3, padding=1), torch.nn.ReLU(),
        cct.DepthwiseConv2d(6, 6, 3, padding=1), cct.MaxPool2d(2),
        cct.SeparableConv2d(6, 4, 3, padding=1), cct.AvgPool2d(2),
        torch.nn.Flatten(), torch.nn.Linear(4 * 2 * 2, 5),
    ).double()


def global_batches():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(STEPS, GLOBAL_BATCH, 3, 8, 8, generator=g, dtype=torch.float64)
    t = torch.randint(0, 5, (STEPS, GLOBAL_BATCH), generator=g)
    return x, t


def _train(model, params, rank=0, world_size=1):
    opt = torch.optim.SGD(params, lr=0.1, momentum=0.9)
    x, t = global_batches()
    for step in range(STEPS):
        # each rank takes its contiguous shard; mean losses over equal shards, averaged by DDP,
        # give the gradient of the global batch's mean loss
        xs, ts = x[step].chunk(world_size)[rank], t[step].chunk(world_size)[rank]
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(xs), ts).backward()
        opt.step()


def train_single():
    model = build_model()
    _train(model, model.parameters())
    return model.state_dict()


def main(rank, world_size, store, out):
    import torch.distributed as dist
    torch.set_num_threads(1)
    convcore.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank,
                            world_size=world_size)
    try:
        model = torch.nn.parallel.DistributedDataParallel(build_model())
        _train(model, model.parameters(), rank, world_size)
        if rank == 0:
            torch.save(model.module.state_dict(), out)
        # both ranks reach teardown together: a rank that destroyed its gloo group while the
        # other was still working was seen to abort ("terminate called without an active
        # exception", SIGABRT) about once in twenty runs
        dist.barrier()
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4])
