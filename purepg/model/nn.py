r"""A multilayer perceptron on one flat float64 parameter vector, differentiated by hand.

Layout (contract)
-----------------
Layer sizes ``(d_0, d_1, ..., d_L)``. The flat vector ``theta`` holds, for each layer
``l = 1..L`` in order, the weight matrix ``W_l`` of shape ``(d_l, d_{l-1})`` in row-major order,
then the bias ``b_l`` of shape ``(d_l,)``. This is exactly
``torch.nn.utils.parameters_to_vector(nn.Sequential(nn.Linear(d_0, d_1), act, ..., nn.Linear(d_{L-1}, d_L)))``.

Forward pass
------------
For a batch ``x`` of shape ``(N, d_0)``, with ``h_0 = x``::

    z_l = h_{l-1} W_l^T + b_l            (N, d_l)          (1)
    h_l = phi(z_l)        for l < L      (N, d_l)          (2)
    out = z_L                            (N, d_L)          (3)  (the head is linear)

``phi`` is ``tanh`` (``phi'(z) = 1 - tanh(z)^2 = 1 - h^2``) or ``relu`` (``phi'(z) = [z > 0] = [h > 0]``),
so the backward pass needs only the cached activations ``h_l``.

Reverse mode (VJP, ``backward``)
--------------------------------
Given ``dout = dL/d out`` of shape ``(N, d_L)`` (a cotangent; for a scalar loss ``L`` the sum over the
batch is implied), set ``dz_L = dout`` and go down the layers::

    dW_l = dz_l^T h_{l-1}                (d_l, d_{l-1})    (4)   = sum_i outer(dz_l[i], h_{l-1}[i])
    db_l = sum_i dz_l[i]                 (d_l,)            (5)
    dh_{l-1} = dz_l W_l                  (N, d_{l-1})      (6)
    dz_{l-1} = dh_{l-1} * phi'(z_{l-1})  (N, d_{l-1})      (7)

``backward`` returns the flat ``dtheta`` in the layout above: ``sum_i dout[i] . d out[i] / d theta``.
Per-sample gradients keep the sum in (4)-(5) unexpanded: row ``i`` of the ``(N, P)`` result is
``outer(dz_l[i], h_{l-1}[i])`` and ``dz_l[i]`` for every layer; that fill is the Numba kernel
:func:`purepg.kernels.persample_fill`.

Forward mode (JVP / R-operator, ``jvp``)
----------------------------------------
For a tangent ``v`` of theta with pieces ``(dW_l, db_l)``, differentiate (1)-(3) along ``v``::

    dz_l = dh_{l-1} W_l^T + h_{l-1} dW_l^T + db_l,   dh_0 = 0     (8)
    dh_l = phi'(z_l) * dz_l                                        (9)

and ``d out = dz_L`` is ``J(x) v`` with ``J = d out / d theta`` -- one forward sweep, no matrix.

Reused buffers (``*_into``)
---------------------------
Every pass above writes (N, d_l) arrays. :meth:`MLP.workspace` allocates them once for a batch size
``N``, and :meth:`MLP.forward_into`, :meth:`MLP.backward_into` and :meth:`MLP.jvp_into` are the passes of
:meth:`MLP.forward`, :meth:`MLP.backward` and :meth:`MLP.jvp_from_cache` with each product written into
its arrays (``numpy.matmul(..., out=)``, the same BLAS call and the same bits as a fresh result), so a
loop that repeats a pass on equal-sized batches -- conjugate gradient on one Fisher matrix, minibatch
epochs of a value fit -- allocates no (N, d_l) array after the first pass. At N = 1024 an (N, 64)
float64 result is 512 KB, a block ``malloc`` maps fresh from the kernel and faults in page by page on
every call, a cost of the same order as the arithmetic. The forward activations, the backward
cotangents and the JVP tangents have separate arrays, so a cached forward pass stays valid while JVPs
and VJPs run from it; a second ``forward_into`` with the same workspace overwrites the first (its
``out`` and cache are views of the workspace).

Initialisation
--------------
``scheme="orthogonal"`` (the default): orthogonal weights scaled by a gain per layer (Saxe et al.
2014), zero biases. The usual gains for policy-gradient networks are sqrt(2) on hidden layers, 0.01 on
a policy head and 1 on a value head (Engstrom et al. 2020, "Implementation matters", sec. 3;
Andrychowicz et al. 2021, sec. 3.2).

``scheme="torch"``: the distribution of a freshly built ``torch.nn.Linear(d_in, d_out)``, weights and
biases independent and uniform on ``[-1/sqrt(d_in), 1/sqrt(d_in)]`` (its ``reset_parameters``:
Kaiming-uniform with ``a = sqrt(5)``, whose bound ``sqrt(6 / ((1 + a^2) d_in))`` is ``1/sqrt(d_in)``).
Gains do not apply. This is what Stable-Baselines3 keeps with ``ortho_init=False``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from purepg import kernels
from purepg import _check
from purepg._check import as_matrix, as_vector, init_scheme

ACTIVATIONS = ("tanh", "relu")


class MLPCache(NamedTuple):
    """What the backward pass needs: the input of every layer, ``hs[l] = h_l`` (``hs[0] = x``)."""

    hs: tuple  # (L,) arrays, hs[l] of shape (N, d_l) for l = 0..L-1


class Workspace(NamedTuple):
    """Preallocated arrays of the passes of an MLP on batches of ``N`` rows (from :meth:`MLP.workspace`)."""

    sizes: tuple   # the MLP's (d_0, ..., d_L)
    N: int
    h: tuple       # forward, eqs. (1)-(3): h[l - 1] (N, d_l) holds h_l for l = 1..L (h[L - 1] = out)
    dz: tuple      # backward, eqs. (6)-(7): dz[l - 1] (N, d_l) holds dz_l for l = 1..L-1
    jz: tuple      # JVP, eqs. (8)-(9): jz[l - 1] (N, d_l) holds dz_l for l = 1..L (jz[L - 1] = J v)
    jt: tuple      # JVP scratch: jt[l - 1] (N, d_l) for dh_{l-1} W_l^T, l = 1..L (jt[0] unused)


@dataclass(frozen=True)
class MLP:
    """Structure of an MLP; parameters are always passed explicitly as a flat ``theta``.

    Parameters
    ----------
    sizes : tuple of int
        ``(d_0, ..., d_L)``, at least two entries (``(d_0, d_L)`` is a linear map).
    activation : {"tanh", "relu"}
        Hidden nonlinearity ``phi``.
    """

    sizes: tuple
    activation: str = "tanh"

    def __post_init__(self):
        try:
            sizes = tuple(int(d) for d in self.sizes)
            integral = all(d == s and not isinstance(s, bool) for d, s in zip(sizes, self.sizes))
        except (TypeError, ValueError):
            integral = False
        if not integral:
            raise ValueError(f"sizes: expected integer layer sizes (d_0, ..., d_L), got {self.sizes!r}. Fix: "
                             "pass whole numbers of units per layer")
        if len(sizes) < 2 or min(sizes) < 1:
            raise ValueError(f"sizes: expected at least two positive layer sizes (d_0, ..., d_L), "
                             f"got {self.sizes!r}. Fix: pass (input size, *hidden widths, output size), all >= 1")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation: expected one of {ACTIVATIONS}, got {self.activation!r}. Fix: "
                             "pick one of those")
        object.__setattr__(self, "sizes", sizes)
        layout, off = [], 0                  # per layer: W_l = theta[off:mid] as (d_l, d_{l-1}), b_l = theta[mid:end]
        for d_in, d_out in zip(sizes[:-1], sizes[1:]):
            layout.append((off, off + d_out * d_in, off + d_out * d_in + d_out, (d_out, d_in)))
            off = layout[-1][2]
        object.__setattr__(self, "_layout", tuple(layout))
        object.__setattr__(self, "_num_params", off)
        object.__setattr__(self, "_layout_array", kernels.passes.layout_of(sizes))   # the one-call passes'

    def _one_call(self, N, *arrays):
        """Whether a pass into a workspace runs as one kernel call (:mod:`purepg.kernels.passes`)."""
        return self.activation == "tanh" and kernels.passes.fits(self.sizes, N, *arrays)

    # ----- layout -----------------------------------------------------------------------------
    @property
    def num_layers(self) -> int:
        return len(self.sizes) - 1

    @property
    def num_params(self) -> int:
        return self._num_params

    def unflatten(self, theta):
        """Views ``[(W_1, b_1), ..., (W_L, b_L)]`` into ``theta`` (no copy), ``W_l`` of shape (d_l, d_{l-1})."""
        return [(theta[a:m].reshape(shape), theta[m:e]) for a, m, e, shape in self._layout]

    def check_theta(self, theta, name="theta"):
        return as_vector(theta, self.num_params, name,
                         hint=f"pass a flat vector of length MLP.num_params = {self.num_params} (e.g. from init(rng))")

    def workspace(self, N) -> Workspace:
        """Buffers for the passes on batches of ``N`` rows (module docstring, "Reused buffers")."""
        N = _check.positive_int(N, "N", "pass the number of rows of the batches the workspace will hold")

        def bufs():
            return tuple(np.empty((N, d)) for d in self.sizes[1:])

        return Workspace(self.sizes, N, bufs(), bufs()[:-1], bufs(), bufs())

    def _check_ws(self, ws, N):
        """``ws`` must come from ``self.workspace(N)`` (cheap: no array is inspected)."""
        if not isinstance(ws, Workspace) or ws.sizes != self.sizes or ws.N != N:
            got = (f"a workspace for sizes {ws.sizes} and N = {ws.N}" if isinstance(ws, Workspace)
                   else type(ws).__name__)
            raise ValueError(f"ws: expected MLP.workspace({N}) of this network (sizes {self.sizes}), got {got}. "
                             f"Fix: build one with net.workspace(N) for this batch size, or call the pass "
                             f"without a workspace (forward, backward, jvp_from_cache)")

    # ----- init -------------------------------------------------------------------------------
    def init(self, rng: np.random.Generator, gains=None, scheme="orthogonal") -> np.ndarray:
        """Orthogonal weights times ``gains[l]``, zero biases (default gains: sqrt(2) hidden, 1 head); or,
        with ``scheme="torch"``, PyTorch's ``nn.Linear`` default (module docstring, "Initialisation")."""
        _check.generator(rng)
        init_scheme(scheme, "scheme")
        if scheme == "torch":
            theta = np.empty(self.num_params)
            for W, b in self.unflatten(theta):
                bound = 1.0 / np.sqrt(W.shape[1])                # 1 / sqrt(d_in)
                W[...] = rng.uniform(-bound, bound, W.shape)
                b[...] = rng.uniform(-bound, bound, b.shape)
            return theta
        if gains is None:
            gains = (np.sqrt(2.0),) * (self.num_layers - 1) + (1.0,)
        if len(gains) != self.num_layers:
            raise ValueError(f"gains: expected {self.num_layers} values (one per layer), got {len(gains)}. Fix: "
                             "pass one gain for each weight matrix")
        theta = np.zeros(self.num_params)
        for (W, _), g in zip(self.unflatten(theta), gains):
            W[...] = g * orthogonal(W.shape, rng)
        return theta

    # ----- forward / backward -----------------------------------------------------------------
    def forward(self, theta, x, *, check=True):
        """Eqs. (1)-(3). ``x`` (N, d_0) -> ``out`` (N, d_L), cache for :meth:`backward`.

        ``check=False`` skips the validation of ``theta`` and ``x`` (shapes, dtype, finiteness): for
        callers that validated them already, e.g. once per iteration of a training loop.
        :meth:`forward_into` is the same pass into a :meth:`workspace`. A tanh network on arrays the
        one-call pass takes runs it (:func:`purepg.kernels.mlp_forward`, into fresh arrays).
        """
        if check:
            theta = self.check_theta(theta)
            x = as_matrix(x, self.sizes[0], "x")
        if self._one_call(x.shape[0], theta, x):              # the same pass in one kernel call, the same bits
            hs = (x, *(np.empty((x.shape[0], d)) for d in self.sizes[1:]))
            return kernels.passes.mlp_forward(theta, self._layout_array, hs), MLPCache(hs[:-1])
        h, hs = x, []
        last = self.num_layers - 1
        for l, (W, b) in enumerate(self.unflatten(theta)):
            hs.append(h)
            z = h @ W.T                                       # (N, d_l)   eq. (1)
            z += b
            h = self._phi(z) if l < last else z               # (N, d_l)   eq. (2), in place: h_l = phi(z_l)
        return h, MLPCache(tuple(hs))                         # eq. (3): out = z_L

    def forward_into(self, ws, theta, x):
        """:meth:`forward` of validated ``theta`` and ``x`` (N, d_0), each product written into the
        :meth:`workspace` ``ws`` for ``N`` rows (module docstring, "Reused buffers"): the same bits, and
        ``out`` and the cache are views of ``ws.h``. A tanh layer's bias add and activation run as one pass
        (:func:`purepg.kernels.elementwise.bias_tanh`, the same operations per entry)."""
        self._check_ws(ws, x.shape[0])
        hs = (x, *ws.h[:-1])                                  # h_0 = x, then h_l in ws.h[l - 1]
        if self._one_call(x.shape[0], theta, x):
            return kernels.passes.mlp_forward(theta, self._layout_array, (x, *ws.h)), MLPCache(hs)
        tanh, last = self.activation == "tanh", self.num_layers - 1
        for l, ((W, b), z) in enumerate(zip(self.unflatten(theta), ws.h)):
            np.matmul(hs[l], W.T, out=z)                      # eq. (1)
            if l < last and tanh:
                kernels.elementwise.bias_tanh(z, b)           # eqs. (1)-(2): z + b, then tanh, in one pass
                continue
            z += b
            if l < last:
                self._phi(z)                                  # eq. (2)
        return ws.h[-1], MLPCache(hs)

    def backward_dz(self, theta, dout, cache, dbs=None):
        """Eqs. (6)-(7): the list ``[dz_1, ..., dz_L]`` of per-sample pre-activation cotangents.

        ``dbs``: optional ``[db_1, ..., db_{L-1}]``, (d_l,) arrays that receive eq. (5) for the hidden
        layers, summed in the pass that applies phi' (:func:`purepg.kernels.dphi_mul`).
        """
        layers = self.unflatten(theta)
        dzs = [dout]
        for l in range(self.num_layers - 1, 0, -1):
            dh = dzs[-1] @ layers[l][0]                       # (N, d_{l-1})  eq. (6)
            dzs.append(kernels.dphi_mul(dh, cache.hs[l], self.activation,   # eq. (7), in place
                                        db=None if dbs is None else dbs[l - 1]))
        return dzs[::-1]

    def backward(self, theta, dout, cache, *, check=True):
        """VJP, eqs. (4)-(7): ``sum_i dout[i] . d out[i]/d theta`` as a flat (P,) vector.

        ``check=False`` skips the validation of ``theta`` and ``dout`` (see :meth:`forward`).
        :meth:`backward_into` is the same pass into a :meth:`workspace`. Where the one-call pass applies
        (a tanh network, :func:`purepg.kernels.passes.fits`) the pass runs as that one kernel call, with the
        same bits; the NumPy below is eqs. (4)-(7) as written, and the pass everywhere else.
        """
        if check:
            theta = self.check_theta(theta)
            dout = as_matrix(dout, self.sizes[-1], "dout", rows=cache.hs[0].shape[0])
        if self._one_call(dout.shape[0], theta, dout, *cache.hs):            # one kernel call, the same bits
            return self.backward_into(self.workspace(dout.shape[0]), theta, dout, cache)
        dtheta = np.empty(self.num_params)
        grads = self.unflatten(dtheta)                        # [(dW_l, db_l)] views into dtheta
        dzs = self.backward_dz(theta, dout, cache, dbs=[db for _, db in grads[:-1]])   # eq. (5), l < L
        return _weight_grads(dtheta, grads, dzs, cache)

    def backward_into(self, ws, theta, dout, cache, out=None):
        """:meth:`backward` of validated ``theta`` and ``dout``, the cotangents of eq. (6) written into the
        :meth:`workspace` ``ws`` (``ws.dz``) instead of fresh arrays: the same bits. ``out``: an optional
        contiguous (P,) float64 array that receives ``dtheta`` (e.g. a slice of a longer gradient)."""
        self._check_ws(ws, cache.hs[0].shape[0])
        dtheta = np.empty(self.num_params) if out is None else out
        if self._one_call(dout.shape[0], theta, dout, dtheta, *cache.hs):
            kernels.passes.mlp_backward(theta, self._layout_array, dout, cache.hs, ws.dz, dtheta)
            if self.sizes[-1] == 1:
                dout.sum(axis=0, out=dtheta[-1:])            # eq. (5) of a 1-unit head: NumPy's own (pairwise) sum
            return dtheta
        grads = self.unflatten(dtheta)
        dzs = [dout]
        for (W, _), (_, db), h, buf in reversed(list(zip(self.unflatten(theta)[1:], grads, cache.hs[1:], ws.dz))):
            dzs.append(kernels.dphi_mul(np.matmul(dzs[-1], W, out=buf), h, self.activation, db=db))  # (6)-(7)
        return _weight_grads(dtheta, grads, dzs[::-1], cache)

    def persample_grads(self, theta, dout, cache, backend="numba", out=None):
        """Per-sample VJPs: row ``i`` is ``dout[i] . d out[i] / d theta``, shape (N, P) (written to ``out``)."""
        theta = self.check_theta(theta)
        dout = as_matrix(dout, self.sizes[-1], "dout", rows=cache.hs[0].shape[0])
        dzs = self.backward_dz(theta, dout, cache)
        H = np.ascontiguousarray(np.concatenate(cache.hs, axis=1))   # (N, sum d_{l-1})
        DZ = np.ascontiguousarray(np.concatenate(dzs, axis=1))       # (N, sum d_l)
        return kernels.persample_fill(np.asarray(self.sizes, dtype=np.int64), H, DZ, backend=backend, out=out)

    def jvp(self, theta, x, v):
        """Forward mode, eqs. (8)-(9): returns ``(out, J v)``, both (N, d_L)."""
        out, dout, _ = self.jvp_with_cache(theta, x, v)
        return out, dout

    def jvp_with_cache(self, theta, x, v, *, check=True):
        """:meth:`jvp` that also returns the forward cache, so a VJP can follow (Fisher-vector products).

        ``check=False`` skips the validation of ``theta``, ``x`` and ``v`` (see :meth:`forward`).
        """
        if check:
            v = self.check_theta(v, "v")
        out, cache = self.forward(theta, x, check=check)
        return out, self.jvp_from_cache(theta, v, cache, check=False), cache

    def jvp_from_cache(self, theta, v, cache, *, check=True):
        """Eqs. (8)-(9) at the point of a forward pass: ``J v`` (N, d_L) from its ``cache``.

        ``cache`` comes from :meth:`forward` at this ``theta``: its activations ``h_l`` give
        ``phi'(z_l)`` (eq. (9)), so repeated products ``J v`` at one point (conjugate gradient on a
        Fisher matrix) cost the tangent sweep alone. ``check=False`` skips validating ``theta``, ``v``.
        :meth:`jvp_into` is the same sweep into a :meth:`workspace`.
        """
        if check:
            theta, v = self.check_theta(theta), self.check_theta(v, "v")
        layers, last = self.unflatten(theta), self.num_layers - 1
        dh = None                                             # dh_0 = 0: the input does not depend on theta
        for l, (dW, db) in enumerate(self.unflatten(v)):
            dz = cache.hs[l] @ dW.T                           # (N, d_l)  eq. (8)
            if dh is not None:
                dz += dh @ layers[l][0].T
            dz += db
            if l == last:
                return dz
            dh = kernels.dphi_mul(dz, cache.hs[l + 1], self.activation)   # eq. (9), in place: dz not needed again

    def jvp_into(self, ws, theta, v, cache):
        """:meth:`jvp_from_cache` of validated ``theta`` and ``v``, each product written into the
        :meth:`workspace` ``ws`` (``ws.jz``, ``ws.jt``): the same bits; ``J v`` is a view of ``ws.jz[-1]``."""
        self._check_ws(ws, cache.hs[0].shape[0])
        if self._one_call(cache.hs[0].shape[0], theta, v, *cache.hs):
            return kernels.passes.mlp_jvp(theta, v, self._layout_array, cache.hs, ws.jz, ws.jt)
        (dW, db), *tangents = self.unflatten(v)
        dz = np.matmul(cache.hs[0], dW.T, out=ws.jz[0])      # eq. (8) at l = 1: dh_0 = 0
        dz += db
        for (W, _), (dW, db), h, jz, jt in zip(self.unflatten(theta)[1:], tangents, cache.hs[1:], ws.jz[1:], ws.jt[1:]):
            dh = kernels.dphi_mul(dz, h, self.activation)    # eq. (9), in place
            dz = np.matmul(h, dW.T, out=jz)                   # eq. (8)
            dz += np.matmul(dh, W.T, out=jt)
            dz += db
        return dz

    # ----- activation -------------------------------------------------------------------------
    def _phi(self, z):
        """``phi(z)`` written over ``z`` (the pre-activation is never needed again, see eq. (7)); returns it."""
        if self.activation == "tanh":
            return kernels.elementwise.tanh(z, out=z)       # np.tanh to <= 4 ulp, SIMD on any x86-64
        return np.maximum(z, 0.0, out=z)

    # phi'(z) = 1 - h^2 (tanh) or [h > 0] (relu) from h = phi(z): the in-place kernel ``kernels.dphi_mul``.


def _weight_grads(dtheta, grads, dzs, cache):
    """Eqs. (4)-(5) into ``dtheta`` from its views ``grads = [(dW_l, db_l)]`` and the cotangents ``dzs``
    (the hidden layers' ``db_l`` are already summed, :meth:`MLP.backward_dz`); returns ``dtheta`` (P,)."""
    for (dW, _), dz, h in zip(grads, dzs, cache.hs):
        np.matmul(dz.T, h, out=dW)                            # (d_l, d_{l-1})  eq. (4)
    dzs[-1].sum(axis=0, out=grads[-1][1])                     # (d_L,)          eq. (5), l = L
    return dtheta


def orthogonal(shape, rng: np.random.Generator) -> np.ndarray:
    """A (semi-)orthogonal matrix of ``shape`` from the QR decomposition of a Gaussian matrix.

    Rows are orthonormal if ``rows <= cols``, else columns. The sign of ``diag(R)`` is folded into
    ``Q`` so the distribution is Haar (Mezzadri 2007, "How to generate random matrices from the
    classical compact groups", sec. 5).
    """
    rows, cols = shape
    A = rng.standard_normal((max(rows, cols), min(rows, cols)))
    Q, R = np.linalg.qr(A)
    d = np.sign(np.diag(R))
    d[d == 0] = 1.0
    Q = Q * d
    return Q if rows >= cols else Q.T
