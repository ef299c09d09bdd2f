"""Branch statistics of residual blocks: the RMS of both addends and the gradient of both branches.

Branch gradients follow the algebra of a residual block y = F(x) + S(x): dL/dx is the sum of
what flows back through F (the main path) and through S (the shortcut). resviz blocks expose the
split as a :class:`~resviz.model.blocks.Fork` returning two views of x, so a tensor hook on each
view sees exactly one term and a hook on x sees the sum.

Every other residual addition, found in the model's computation by :mod:`resviz.measure.structure`
(torchvision, timm, HuggingFace, ViT blocks ...), gets the same split from :class:`SiteMode`: it
replays the forward's operations in the order discovery recorded them and, where an operation
reads the fork point x, hands it a view of x made for that branch (one for the operations of the
main branch, one for the shortcut's, or for the addition itself when the shortcut is x). The two
views' gradients add up to the gradient at x, which a hook on x reads. At the addition, the norms
of the two operands actually added are taken, before an in-place ``+=`` can change one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor, nn
from torch.utils._pytree import tree_map
from torch.utils.hooks import RemovableHandle

from resviz.errors import one_line
from resviz.measure.graph import Graph, Recorder, quietly
from resviz.measure.static import stage_of
from resviz.measure.stats import norms
from resviz.measure.structure import Layout, ResidualSite, discover
from resviz.model.blocks import PreActBlock, ResidualBlock, find_blocks, shortcut_type
from resviz.model.resnet import ResNet
from resviz.records import ShortcutKind

GradHook = Callable[["BlockProbe", str, Tensor], None]


def norm(t: Tensor) -> Tensor:
    """The L2 norm of ``t`` as a float32 0-d tensor, on its device."""
    return norms([t.detach()])[0]


@dataclass
class BlockProbe:
    """Device scalars of one block, filled by hooks during one forward/backward."""

    name: str
    shortcut: ShortcutKind
    call: int = 1
    main: Tensor | None = None
    skip: Tensor | None = None
    main_numel: int = 0
    skip_numel: int = 0
    main_row: int | None = None  # row of the layer statistics that already hold the main operand's norm
    skip_row: int | None = None
    grads: dict[str, Tensor] = field(default_factory=dict)
    vectors: dict[str, Tensor] = field(default_factory=dict)
    stage: str = ""
    """Set for blocks found in the computation (:class:`~resviz.measure.structure.Layout`)."""


def _main_operand(block: nn.Module) -> nn.Module | None:
    """The module whose output is the main operand of the residual addition."""
    if isinstance(block, ResidualBlock) and block.add is not None:
        return None  # read from the ResidualAdd pre-hook instead
    if isinstance(block, PreActBlock):
        return getattr(block, "conv3", None) or getattr(block, "conv2", None)
    return getattr(block, "bn3", None) or getattr(block, "bn2", None)


class BranchCapture:
    """Hooks that measure, per block, the RMS of both addends and the gradient of both branches.

    ``keep_vectors`` also keeps detached copies of the three gradients (for verification only).
    """

    def __init__(self, model: nn.Module, keep_vectors: bool = False) -> None:
        self.model = model
        self.keep_vectors = keep_vectors
        own: list[tuple[str, nn.Module]] = [(n, b) for n, b in find_blocks(model) if isinstance(b, ResidualBlock)]
        self.blocks: list[tuple[str, nn.Module]] = own
        """resviz's own blocks (hooked at their fork), then, once the model has run, the modules of
        the residual sites found in its computation (:mod:`resviz.measure.structure`)."""
        self.sites: list[ResidualSite] = []
        """The residual sites measured through the computation (outside resviz's own blocks)."""
        self.probes: dict[str, BlockProbe] = {}
        self._mode: SiteMode | None = None
        self._handles: list[RemovableHandle] = []
        self.expected = 0
        self.notes: list[str] = []
        self.inplace: tuple[int, ...] = ()
        """The forward's in-place operations (graph nodes of the structure found)."""
        self.before_inplace: Callable[[], None] | None = None
        """Called right before each of them runs (the layer statistics reduce what they recorded)."""
        self.layout: Layout | None = None
        """Where the model's modules sit, once blocks were found in its computation."""
        self.find_row: Callable[[Tensor], int | None] | None = None
        """Set by :class:`TraceSession`: finds an addend among the recorded layer outputs, whose
        norm the layer statistics compute anyway, so it is not reduced a second time."""

    def reset(self) -> None:
        own = {n for n, b in self.blocks if isinstance(b, ResidualBlock)}
        self.probes = {n: BlockProbe(n, shortcut_type(b)) for n, b in self.blocks if n in own}
        self._current = dict(self.probes)
        self._entered: set[str] = set()

    def _enter(self, name: str) -> Callable[..., None]:
        """Pre-hook that starts a block's record: a block that runs again in the same forward
        (shared weights) gets a new probe per call, so calls are never mixed."""
        def pre(_m: nn.Module, _args: tuple[Any, ...]) -> None:
            if name not in self._entered:
                self._entered.add(name)
                return
            last = self._current[name]
            again = BlockProbe(name, last.shortcut, call=last.call + 1)
            self.probes[f"{name}#{again.call}"] = self._current[name] = again

        return pre

    def _grad_hook(self, probe: BlockProbe, key: str, t: Tensor) -> None:
        if not t.requires_grad:
            return

        def hook(g: Tensor) -> None:
            probe.grads[key] = norm(g)
            if self.keep_vectors:
                probe.vectors[key] = g.detach().clone()

        t.register_hook(hook)

    def attach(self, handles: list[RemovableHandle], example: Tensor | None = None, running: bool = False) -> None:
        """Hook resviz's blocks; with ``example`` (the input of the forward to measure, or one of its
        shape), also every other residual site of the model's computation, measured from the
        model's next forward on, or from now on when that forward is ``running`` already."""
        self.reset()
        sites = self._find_sites(example) if example is not None else []
        for name, block in self.blocks:
            if not isinstance(block, ResidualBlock):
                continue
            handles.append(block.register_forward_pre_hook(self._enter(name)))
            self._attach_resviz(block, name, handles)
            main_mod = _main_operand(block)
            if main_mod is not None:
                handles.append(main_mod.register_forward_hook(self._main_hook(name)))
        if not sites:
            return
        self._handles = handles
        if running and example is not None:
            self._begin(example)
        else:
            handles.append(self.model.register_forward_pre_hook(self._start_sites))
        handles.append(self.model.register_forward_hook(self._end_sites, always_call=True))

    def _find_sites(self, x: Tensor) -> list[ResidualSite]:
        """The residual sites outside resviz's blocks, found from the computation (cached per
        input shape), each with its probe. Found before any hook of this capture is attached, so
        the discovery's own forward runs none."""
        if not x.is_floating_point() or isinstance(self.model, ResNet):
            return []  # resviz's own networks: every residual addition is in one of its blocks
        own = tuple(f"{n}." for n, b in self.blocks if isinstance(b, ResidualBlock))
        try:
            found = discover(self.model, tuple(x.shape), x.dtype)
        except Exception as exc:
            self.notes.append(f"the residual structure of the computation was not found: {one_line(exc)[:200]}")
            return []
        self.sites = [s for s in found.sites if not f"{s.module}.".startswith(own)]
        self.layout = Layout(self.sites, stage_of) if self.sites else None
        known = {n for n, _ in self.blocks}
        for s in self.sites:
            self.probes[s.name] = self._probe(s)
            if s.name not in known:
                self.blocks.append((s.name, self.model.get_submodule(s.module)))
        self.expected = found.nodes
        self.inplace = found.inplace
        return self.sites

    def _probe(self, site: ResidualSite) -> BlockProbe:
        stage = self.layout.stages[site.name] if self.layout is not None else ""
        return BlockProbe(site.name, site.shortcut, call=site.call, stage=stage)

    def _start_sites(self, _m: nn.Module, args: tuple[Any, ...]) -> None:
        x = args[0] if args else None
        if isinstance(x, Tensor) and self._mode is None:
            self._begin(x)

    def _begin(self, x: Tensor) -> None:
        """Measure the sites in the forward that starts now (its input ``x``): a :class:`SiteMode`."""
        self._mode = SiteMode(self.model, self.sites, self.probes, self._grad_hook)
        self._mode.inplace = frozenset(self.inplace)
        self._mode.before_inplace = self.before_inplace
        self._mode.begin(x, self._handles)

    def close(self) -> None:
        """End a recording its forward left running (the forward raised past the hooks, as
        ``KeyboardInterrupt`` does): the owner calls this when it removes its handles."""
        if self._mode is not None:
            mode, self._mode = self._mode, None
            mode.end()

    def _end_sites(self, _m: nn.Module, _args: tuple[Any, ...], _out: Any) -> None:
        """End of the forward: the mode ends; if its operations were not those discovery saw (the
        forward took another path), the sites' numbers are dropped rather than mixed up."""
        if self._mode is None:
            return
        mode, self._mode = self._mode, None
        mode.end()
        if mode.mismatch or len(mode.graph.nodes) != self.expected:
            for s in self.sites:
                self.probes[s.name] = self._probe(s)
            self.notes.append("the forward ran other operations than when its structure was found: "
                              "branch statistics of the blocks found in its computation were not measured")

    def _main_hook(self, name: str) -> Callable[..., None]:
        @quietly
        def hook(_m: nn.Module, _args: tuple[Any, ...], out: Any) -> None:
            if isinstance(out, Tensor):
                probe = self._current[name]
                probe.main, probe.main_numel = norm(out), out.numel()

        return hook

    def _attach_resviz(self, block: ResidualBlock, name: str, handles: list[RemovableHandle]) -> None:
        if block.fork is None or block.add is None:
            @quietly
            def plain_pre(_m: nn.Module, args: tuple[Any, ...]) -> None:
                probe = self._current[name]
                self._grad_hook(probe, "total", args[0])
                self._grad_hook(probe, "main", args[0])

            handles.append(block.register_forward_pre_hook(plain_pre))
            return

        @quietly
        def fork_hook(_m: nn.Module, args: tuple[Any, ...], out: tuple[Tensor, Tensor]) -> None:
            probe = self._current[name]
            self._grad_hook(probe, "total", args[0])
            self._grad_hook(probe, "main", out[0])
            self._grad_hook(probe, "skip", out[1])

        @quietly
        def add_pre(_m: nn.Module, args: tuple[Any, ...]) -> None:
            main, skip, probe = args[0], args[1], self._current[name]
            probe.main_numel, probe.skip_numel = main.numel(), skip.numel()
            find = self.find_row
            probe.main_row = find(main) if find is not None else None
            probe.skip_row = find(skip) if find is not None else None
            if probe.main_row is None:
                probe.main = norm(main)
            if probe.skip_row is None:
                probe.skip = norm(skip)

        handles.append(block.fork.register_forward_hook(fork_hook))
        handles.append(block.add.register_forward_pre_hook(add_pre))


class SiteMode(Recorder):
    """Records the forward again (same numbering as discovery) and acts on the residual sites'
    operations: views of the fork point for each branch, operand norms at the addition."""

    def __init__(
        self, model: nn.Module, sites: list[ResidualSite], probes: dict[str, BlockProbe], grad_hook: GradHook,
    ) -> None:
        named = (*model.named_parameters(remove_duplicate=False), *model.named_buffers(remove_duplicate=False))
        super().__init__(Graph(), {id(t): n for n, t in named})
        self.model = model
        self.grad_hook = grad_hook
        self.forks: dict[int, list[tuple[ResidualSite, BlockProbe]]] = {}
        self.adds: dict[int, tuple[ResidualSite, BlockProbe]] = {}
        self.readers: dict[int, list[tuple[int, str, BlockProbe]]] = {}
        """For each operation that reads a fork point: (fork node, branch, probe)."""
        self.tensors: dict[int, Tensor] = {}
        self.views: dict[tuple[int, str], Tensor] = {}
        self.mismatch = False
        self.inplace: frozenset[int] = frozenset()
        self.before_inplace: Callable[[], None] | None = None
        self.active = False
        self.on_operands: Callable[[ResidualSite, Tensor, Tensor], None] | None = None
        """Called at each residual addition with its main and skip operands (before it runs)."""
        self.on_sum: Callable[[ResidualSite, Tensor], None] | None = None
        """Called with each residual addition's result."""
        for site in sites:
            probe = probes[site.name]
            self.forks.setdefault(site.fork, []).append((site, probe))
            self.adds[site.add] = (site, probe)
            for node, branch in site.readers:
                self.readers.setdefault(node, []).append((site.fork, branch, probe))

    def begin(self, x: Tensor, handles: list[RemovableHandle]) -> None:
        """Start recording at the model's forward, from inside its pre-hooks. Operations are
        numbered as discovery numbered them; which module runs them is not needed again. The hooks
        that keep module hooks quiet go to ``handles``: their owner removes them, never a hook
        (PyTorch runs a failed forward's hooks from the live dictionary)."""
        handles.extend(self._quiet_hooks())
        self.start(x)
        self.__enter__()
        self.active = True

    def end(self) -> None:
        """Stop recording (at the end of the forward, or when its owner closes after a failure)."""
        if self.active:
            self.active = False
            self.__exit__(None, None, None)

    def _quiet_hooks(self) -> list[RemovableHandle]:
        """Every module's hooks (the user's and resviz's, which discovery's forward did not run)
        run quietly: a hook first in line turns recording off, one last in line on again. The
        count is this mode's own, so a hook that raises cannot silence another recording."""
        def begin(*_args: Any) -> None:
            self.hooks += 1

        def end(*_args: Any) -> None:
            self.hooks = max(self.hooks - 1, 0)

        handles = []
        for m in self.model.modules():
            handles.append(m.register_forward_pre_hook(begin, prepend=True))
            handles.append(m.register_forward_pre_hook(end))
            handles.append(m.register_forward_hook(begin, prepend=True, always_call=True))
            handles.append(m.register_forward_hook(end, always_call=True))
        return handles

    def before(
        self, node: int, args: tuple[Any, ...], kwargs: dict[str, Any], ins: list[Tensor],
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        if node in self.inplace and self.before_inplace is not None:
            self.before_inplace()
        if node in self.adds:
            self._operands(node, ins)
        readers = self.readers.get(node)
        if not readers:
            return args, kwargs
        swap: dict[int, Tensor] = {}
        for fork, branch, probe in readers:
            x = self.tensors.get(fork)
            if x is not None:
                swap[id(x)] = self._view(fork, branch, probe, x)
        if not swap:
            return args, kwargs
        return tree_map(lambda a: swap.get(id(a), a) if isinstance(a, Tensor) else a, (args, kwargs))

    def _view(self, fork: int, branch: str, probe: BlockProbe, x: Tensor) -> Tensor:
        key = (fork, branch)
        view = self.views.get(key)
        if view is None:
            view = self.views[key] = x.view_as(x)
            self.grad_hook(probe, branch, view)
        return view

    def _operands(self, node: int, ins: list[Tensor]) -> None:
        site, probe = self.adds[node]
        by_node = {self.node_of(t): t for t in ins}
        main, skip = by_node.get(site.main_operand), by_node.get(site.skip_operand)
        if main is None or skip is None:
            self.mismatch = True
            return
        probe.main, probe.main_numel = norm(main), main.numel()
        probe.skip, probe.skip_numel = norm(skip), skip.numel()
        if self.on_operands is not None:
            self.on_operands(site, main, skip)

    def after(self, node: int, out: Tensor) -> None:
        if self.on_sum is not None and node in self.adds:
            self.on_sum(self.adds[node][0], out)
        entries = self.forks.get(node)
        if entries is None:
            return
        self.tensors[node] = out
        for _site, probe in entries:
            self.grad_hook(probe, "total", out)


__all__ = ["BlockProbe", "BranchCapture", "SiteMode", "norm"]
