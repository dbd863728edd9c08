"""The matrix chain rule: reverse mode on SymPy matrix expressions (symgrad's own, not SymPy's).

For a scalar L built from ``MatrixSymbol`` expressions (products, sums, transposes,
Hadamard products, inverses, elementwise blocks ``sigmoid(X*W)``, traces, determinants
and 1×1 matrices taken as scalars), :func:`matrix_gradient` returns ∂L/∂W as a matrix
expression in the shape of W. Each node's adjoint G (∂L/∂node, the node's shape) is
accumulated over all its uses before it is pushed to the node's arguments — reverse mode
on the expression DAG, so shared subexpressions are differentiated once:

    Z = A B          G_A = G Bᵀ,  G_B = Aᵀ G
    Z = Aᵀ           G_A = Gᵀ
    Z = A + b        G_b = 1ᵀ G (a bias row spread over the rows of A)
    Z = A ∘ B        G_A = G ∘ B
    Z = f(A) (elementwise)   G_A = G ∘ f'(A), written through the output: σ' → Z ∘ (1 − Z)
    Z = A⁻¹          G_A = −A⁻ᵀ G A⁻ᵀ
    Z = diag(v)      G_v = (G ∘ I) 1
    a block          its own ``adjoints(G)`` (softmax rows, norms, attention, …)
    L = c·tr(A)      G_A = c I;   L = c·det(A):  G_A = c det(A) A⁻ᵀ;   L = c·M[0, 0] (1×1): G_M = c

The engine (:mod:`symgrad.derivation.engine`) calls it on each named intermediate of an expression,
so every call sees a small expression. SymPy's own matrix derivative returns 0 for
``((W*x).T*(W*x))[0, 0].diff(W)`` and a wrong second term through elementwise functions; this module
does not use it.
"""

from __future__ import annotations

import sympy as sp
from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction
from sympy.matrices.expressions.hadamard import HadamardPower, HadamardProduct
from sympy.matrices.expressions.matexpr import MatrixElement

from ..errors import SymgradLimit
from ..catalog.rows import ENTRY, Elementwise, Entrywise, RowBlock, RowLogSoftmax, RowSoftmax, SoftmaxCrossEntropy, elementwise
from ..simplify.textbook import normalise_sign, textbook

__all__ = ["matrix_gradient", "as_scalar", "tidy", "collect_factors", "elementwise_derivative", "vector_jacobian",
           "matrix_doit", "SCALAR_ATOMS"]


SCALAR_ATOMS = (sp.Trace, MatrixElement, sp.Determinant)  # + SoftmaxCrossEntropy (defined below)


def as_scalar(expr: sp.Basic) -> sp.Expr:
    """A 1×1 matrix expression is taken as its only entry; a sum over entries that SymPy
    expanded from ``M[0, 0]`` is written back as matrices (SymPy's array converters)."""
    if isinstance(expr, sp.MatrixExpr):
        if expr.shape != (1, 1):
            raise ValueError(f"the expression is a {expr.shape[0]}×{expr.shape[1]} matrix; a gradient needs a "
                             "scalar (a 1×1 matrix, a trace, an entry, or sq_frobenius(A))")
        return MatrixElement(expr, 0, 0)
    return expr.replace(lambda node: isinstance(node, sp.Sum) and bool(node.atoms(MatrixElement)), _rematricize)


def _rematricize(sum_node: sp.Sum) -> sp.Expr:
    """Σ_i w[i, 0] x[i, 0] (SymPy's expansion of (wᵀx)[0, 0]) → (wᵀx)[0, 0]; a square
    Σ_i w[i, 0]² (SymPy's (wᵀw)[0, 0]) → (wᵀw)[0, 0]."""
    from sympy.tensor.array.expressions.from_array_to_matrix import convert_array_to_matrix
    from sympy.tensor.array.expressions.from_indexed_to_array import convert_indexed_to_array

    twins: dict = {}

    def twin_product(power):  # u² → u · u' (u' = u on twin matrices): SymPy's converter reads products
        base = power.base
        for M in {e.parent for e in base.atoms(MatrixElement)}:
            twins.setdefault(M, sp.MatrixSymbol(f"_twin{len(twins)}", *M.shape))
        twin = base.xreplace({M: twins[M] for M in twins})
        return sp.Mul(sp.expand(base), sp.expand(twin), evaluate=False)

    applied: dict = {}

    def entry_of_elementwise(call):  # f(M_ij) → F_ij with F = f(M) elementwise (a placeholder for now)
        entry = call.args[0]
        F = elementwise(call.func, entry.parent)
        holder = applied.setdefault(F, sp.MatrixSymbol(f"_applied{len(applied)}", *F.shape))
        return MatrixElement(holder, entry.args[1], entry.args[2])

    body = sum_node.function.replace(
        lambda n: isinstance(n, sp.Function) and len(n.args) == 1 and isinstance(n.args[0], MatrixElement),
        entry_of_elementwise)
    body = body.replace(lambda n: n.is_Pow and n.exp == 2 and n.base.has(MatrixElement), twin_product)
    try:
        back = convert_array_to_matrix(convert_indexed_to_array(sp.Sum(body, *sum_node.limits)))
    except Exception:  # SymPy's converters raise many kinds of errors; Σ_i M_i0 fails: read it as Σ_i 1_i M_i0
        ones = {}
        for index, low, high in sum_node.limits:
            ones[sp.MatrixSymbol(f"_ones{len(ones)}", high - low + 1, 1)] = sp.OneMatrix(high - low + 1, 1)
        weighted = body * sp.Mul(*[MatrixElement(o, lim[0] - lim[1], 0) for o, lim in zip(ones, sum_node.limits)])
        try:
            back = convert_array_to_matrix(convert_indexed_to_array(sp.Sum(weighted, *sum_node.limits)))
        except Exception as exc:
            raise SymgradLimit(f"cannot write the sum over matrix entries {sum_node} as matrices ({exc}); "
                               "write it with matrix products instead") from None
        back = back.xreplace(ones)
    back = back.xreplace({t: M for M, t in twins.items()}).xreplace({h: F for F, h in applied.items()})
    if back.has(*twins.values()) if twins else False:  # pragma: no cover - guards SymPy
        raise SymgradLimit(f"cannot write the sum over matrix entries {sum_node} as matrices")
    return MatrixElement(back, 0, 0) if isinstance(back, sp.MatrixExpr) else back


# --- elementwise derivatives, written through the output --------------------------------------------
def elementwise_derivative(node: ElementwiseApplyFunction) -> sp.MatrixExpr:
    """f'(A) as a matrix expression, through the output Z = f(A) when the block's identity
    allows (σ' = σ(1 − σ) → Z ∘ (1 − Z), tanh' → 1 − Z∘Z), else elementwise f'(A)."""
    template, placeholder = _derivative_template(node.function, node.shape)
    if template is None:
        return Elementwise(sp.Lambda(ENTRY, sp.diff(node.function(ENTRY), ENTRY)), node.expr)
    return template.xreplace({placeholder: node})


_TEMPLATES: dict = {}


def _derivative_template(fn: sp.Lambda, shape) -> tuple:
    """f' written through the output for a placeholder Z of ``shape`` (kept: every layer of a deep
    network asks for the same one), or (None, None) when f' is not a polynomial in f."""
    key = (fn, shape)
    if key not in _TEMPLATES:
        d = ENTRY
        out = fn(d)
        s = sp.Dummy("s")
        through_output = sp.diff(out, d).xreplace({out: s})
        placeholder = sp.MatrixSymbol("_Z", *shape)
        converted = None
        if not through_output.has(d):
            converted = _polynomial_to_matrix(sp.expand(through_output), s, placeholder)
        _TEMPLATES[key] = (converted, placeholder if converted is not None else None)
    return _TEMPLATES[key]


def _polynomial_to_matrix(poly: sp.Expr, s: sp.Symbol, Z: sp.MatrixExpr) -> sp.MatrixExpr | None:
    """c0 + c1 s + c2 s² … as c0·1 + c1·Z + c2·Z∘Z, factored the textbook way when it can be."""
    
    ones = sp.OneMatrix(*Z.shape)
    factored = normalise_sign(sp.factor(poly))
    if sp.count_ops(poly) < sp.count_ops(factored):  # 1 − s² reads better than (1 − s)(1 + s)
        factored = poly
    if isinstance(factored, sp.Add):
        return _sum_to_matrix(factored, s, Z, ones)
    coeff, factors = factored.as_coeff_mul()
    pieces = []
    for f in factors:
        base, e = f.as_base_exp()
        if not (e.is_Integer and e > 0):
            return None
        if base == s:
            piece = Z if e == 1 else HadamardPower(Z, e)
        elif base.is_polynomial(s) and sp.degree(base, s) == 1:
            a, c = sp.Poly(base, s).all_coeffs()
            lin = sp.MatAdd(c * ones, a * Z) if c != 0 else a * Z
            piece = lin if e == 1 else HadamardPower(lin, e)
        elif base.is_polynomial(s):
            piece = _sum_to_matrix(base, s, Z, ones)
            piece = piece if e == 1 else HadamardPower(piece, e)
        else:
            return None
        pieces.append(piece)
    if not pieces:
        return coeff * ones
    body = pieces[0] if len(pieces) == 1 else HadamardProduct(*pieces)
    return body if coeff == 1 else coeff * body


def _sum_to_matrix(poly: sp.Expr, s: sp.Symbol, Z, ones) -> sp.MatrixExpr:
    terms = []
    for (k,), c in sp.Poly(poly, s).terms():
        terms.append(c * (ones if k == 0 else Z if k == 1 else HadamardPower(Z, k)))
    return sp.MatAdd(*terms)


# --- reverse mode ------------------------------------------------------------------------------
def matrix_gradient(L: sp.Basic, wrt: sp.MatrixSymbol | sp.Symbol) -> sp.MatrixExpr | sp.Expr:
    """∂L/∂wrt for a scalar L of matrix expressions (see the module docstring). A scalar ``wrt``
    (a bias b in X w + b 1, a weight λ on a norm) is differentiated as the 1×1 matrix [wrt]."""
    L = as_scalar(L)
    if isinstance(wrt, sp.Symbol):
        if not L.has(wrt):
            return sp.S.Zero
        S = sp.MatrixSymbol(f"_scalar_{wrt.name}", 1, 1)
        G = matrix_gradient(L.xreplace({wrt: MatrixElement(S, 0, 0)}), S)
        G = G[0, 0] if not isinstance(G, sp.ZeroMatrix) else sp.S.Zero
        return _doit(G).xreplace({MatrixElement(S, 0, 0): wrt})
    if not L.has(wrt):
        return sp.ZeroMatrix(*wrt.shape)
    order = _topological(L)
    adjoint: dict[sp.Basic, list] = {}

    def add(node, G):
        if node.has(wrt):
            adjoint.setdefault(node, []).append(G)

    _seed_scalar(L, sp.S.One, add, wrt)
    pushed = set()
    for node in reversed(order):  # parents before children
        if node not in adjoint or node == wrt:
            continue
        G = _total(adjoint[node], node.shape)
        _push(node, G, add, wrt)
        pushed.add(node)
    stranded = [node for node in adjoint if node != wrt and node not in pushed]
    if stranded:  # a rule sent an adjoint to a node outside the graph: never return a silent 0
        raise SymgradLimit(f"the matrix chain rule lost the gradient through {stranded[0]}; please report this expression")
    if wrt not in adjoint:
        return sp.ZeroMatrix(*wrt.shape)
    return tidy(_total(adjoint[wrt], wrt.shape))


def _mul(*factors) -> sp.MatrixExpr:
    """A product built without ``MatrixExpr.__mul__``'s deep ``doit`` (which would expand
    scalar atoms like (wᵀx)[0, 0] into index sums); ``_doit`` canonicalises later."""
    factors = [f for f in factors if f != 1]
    return factors[0] if len(factors) == 1 else sp.MatMul(*factors)


def _T(A: sp.MatrixExpr) -> sp.MatrixExpr:
    """Aᵀ without SymPy's deep ``doit`` (see ``_mul``)."""
    return sp.Transpose(A)


def _doit(expr: sp.Basic) -> sp.Basic:
    """``doit`` that leaves scalar atoms alone ((wᵀx)[0, 0] must not become an index sum)."""
    shield = {a: sp.Dummy("s") for a in expr.atoms(MatrixElement, sp.Trace, sp.Determinant, SoftmaxCrossEntropy)}
    return expr.xreplace(shield).doit().xreplace({d: a for a, d in shield.items()})


def _total(contributions: list, shape) -> sp.MatrixExpr:
    total = contributions[0] if len(contributions) == 1 else sp.MatAdd(*contributions)
    total = _doit(total)
    if isinstance(total, sp.MatrixBase) and total.shape != shape:  # pragma: no cover - guards SymPy
        raise SymgradLimit("matrix chain rule produced a wrong shape")
    return total


def _topological(root: sp.Basic) -> list:
    """Matrix-expression nodes below ``root`` in post-order (children first), each once."""
    seen: set = set()
    order: list = []

    def visit(node):
        if node in seen:
            return
        seen.add(node)
        for arg in node.args:
            if isinstance(arg, sp.Basic) and (isinstance(arg, sp.MatrixExpr) or arg.has(sp.MatrixSymbol)):
                visit(arg)
        if isinstance(node, sp.MatrixExpr):
            order.append(node)

    visit(root)
    return order


def _seed_scalar(expr: sp.Expr, weight: sp.Expr, add, wrt) -> None:
    """Scalar level: push weight·∂expr/∂atom into every trace, entry and determinant."""
    atoms = _top_scalar_atoms(expr)
    dummies = {a: sp.Dummy("m") for a in atoms}
    plain = expr.xreplace(dummies)
    for atom, dummy in dummies.items():
        if not atom.has(wrt):
            continue
        c = (weight * sp.diff(plain, dummy)).xreplace({d: a for a, d in dummies.items()})
        if c == 0:
            continue
        if isinstance(atom, sp.Trace):
            M = atom.arg
            add(M, _mul(c, sp.Identity(M.rows)))
        elif isinstance(atom, SoftmaxCrossEntropy):
            add(atom.args[0], _mul(c, atom.gradient(0)))
            if atom.args[1].has(wrt):
                atom.gradient(1)
        elif isinstance(atom, sp.Determinant):
            M = atom.arg
            add(M, _mul(c, atom, _T(sp.Inverse(M))))
        elif isinstance(atom, MatrixElement):
            M, i, j = atom.args
            if M.shape == (1, 1):
                add(M, _mul(c, sp.Identity(1)))
            elif all(dim.is_Integer for dim in M.shape) and i.is_Integer and j.is_Integer:
                unit = sp.ImmutableMatrix(*M.shape, lambda r, q: 1 if (r, q) == (i, j) else 0)
                add(M, _mul(c, unit))
            else:
                raise SymgradLimit(f"the entry {atom} of a {M.shape[0]}×{M.shape[1]} matrix with symbolic "
                                   "indices is not supported; write a 1×1 product (aᵀ M b) or a trace")


def _top_scalar_atoms(expr: sp.Expr) -> list:
    out: list = []

    def walk(node):
        if isinstance(node, SCALAR_ATOMS + (SoftmaxCrossEntropy,)):
            if node not in out:
                out.append(node)
            return
        if isinstance(node, sp.MatrixExpr):
            raise SymgradLimit(f"a matrix {node} inside a scalar expression; take a trace or an entry")
        for a in node.args:
            walk(a)

    walk(expr)
    return out


def _push(node: sp.MatrixExpr, G: sp.MatrixExpr, add, wrt) -> None:
    """Send the adjoint G of ``node`` to its arguments."""
    if isinstance(node, sp.MatAdd):
        for a in node.args:
            add(a, _unbroadcast(G, a.shape, node.shape))
    elif isinstance(node, sp.MatMul):
        coeff, mats = node.as_coeff_matrices()
        if coeff.has(wrt):  # a scalar factor that depends on wrt: ⟨G, M⟩ dc
            rest = sp.MatMul(*mats)
            _seed_scalar(coeff, sp.Trace(_mul(_T(G), rest)), add, wrt)
        for i, A in enumerate(mats):
            if not A.has(wrt):
                continue
            left, right = mats[:i], mats[i + 1:]
            factors = ([_T(sp.MatMul(*left))] if left else []) + [G] + ([_T(sp.MatMul(*right))] if right else [])
            add(A, _mul(coeff, *factors))
    elif isinstance(node, sp.Transpose):
        add(node.arg, _T(G))
    elif isinstance(node, HadamardProduct):
        for i, a in enumerate(node.args):
            others = node.args[:i] + node.args[i + 1:]
            add(a, HadamardProduct(G, *others))
    elif isinstance(node, HadamardPower):
        base, e = node.args
        add(base, _mul(e, HadamardProduct(G, HadamardPower(base, e - 1) if e != 2 else base)))
    elif isinstance(node, ElementwiseApplyFunction):
        add(node.expr, HadamardProduct(G, elementwise_derivative(node)))
        body = node.function.expr
        if body.has(wrt):  # a parameter of f itself (α of leaky_relu, p of a power): Σ_ij G_ij ∂f/∂p
            for atom in body.atoms(MatrixElement):
                if atom.has(wrt):
                    partial = Elementwise(sp.Lambda(node.function.variables, sp.diff(body, atom)), node.expr)
                    _seed_scalar(atom, sp.Trace(_mul(_T(G), partial)), add, wrt)
    elif isinstance(node, (RowBlock, Entrywise)):
        for arg, G_arg in node.adjoints(G):
            add(arg, G_arg)
    elif isinstance(node, sp.DiagMatrix):  # Z = diag(v), v a vector: G_v = the diagonal of G (G ∘ I) 1
        v = node.args[0]
        n = node.shape[0]
        diagonal = sp.MatMul(HadamardProduct(G, sp.Identity(n)), sp.OneMatrix(n, 1))
        add(v, diagonal if v.shape[1] == 1 else _T(diagonal))
    elif isinstance(node, sp.Inverse):
        inv_t = _T(sp.Inverse(node.arg))
        add(node.arg, _mul(-1, inv_t, G, inv_t))
    elif isinstance(node, sp.MatPow) and node.exp.is_Integer and node.exp > 0:
        # Z = A^k: G_A = Σ_{i<k} (Aᵀ)^i G (Aᵀ)^{k-1-i} (the product rule over the k factors)
        A, k = node.base, int(node.exp)
        for i in range(k):
            add(A, _mul(*([_T(A)] * i), G, *([_T(A)] * (k - 1 - i))))
    elif isinstance(node, (sp.MatrixSymbol, sp.Identity, sp.ZeroMatrix, sp.OneMatrix)):
        return
    elif hasattr(node, "adjoints"):  # a catalog block that declares its VJP (catalog/norms.py)
        for arg, G_arg in node.adjoints(G):
            add(arg, G_arg)
    else:
        raise SymgradLimit(f"no matrix chain rule for {type(node).__name__} yet")


def _unbroadcast(G: sp.MatrixExpr, shape, full) -> sp.MatrixExpr:
    """The adjoint of a term that was spread over the sum's shape (a bias row b in XW + b):
    summed over the rows it was repeated on (1ᵀG) or the columns (G1)."""
    if tuple(shape) == tuple(full):
        return G
    rows, cols = shape
    if rows == 1 and full[0] != 1:
        G = sp.MatMul(sp.OneMatrix(1, full[0]), G)
    if cols == 1 and full[1] != 1:
        G = sp.MatMul(G, sp.OneMatrix(full[1], 1))
    return G


def tidy(G: sp.MatrixExpr) -> sp.MatrixExpr:
    """Drop identities, collect equal terms (A + A → 2A), scalar factors in textbook form."""
    G = _doit(G)

    def coefficient_textbook(node):
        coeff, mats = node.as_coeff_mmul()
        if coeff.is_number:
            return node
        return sp.MatMul(textbook(coeff), *mats.args) if isinstance(mats, sp.MatMul) else textbook(coeff) * mats

    def pull_coefficients(node):  # (c A) ∘ B → c (A ∘ B), so that p · ((1/p) A) ∘ B cancels
        coeffs, rest = [], []
        for a in node.args:
            c, m = a.as_coeff_mmul() if isinstance(a, sp.MatMul) else (sp.S.One, a)
            coeffs.append(c)
            rest.append(m if not isinstance(m, sp.MatMul) or len(m.args) > 1 else m.args[0])
        total = sp.Mul(*coeffs)
        return node if total == 1 else sp.MatMul(total, HadamardProduct(*rest))

    G = G.replace(lambda n: isinstance(n, sp.MatMul), coefficient_textbook)
    if not isinstance(G, sp.MatrixBase):
        G = G.replace(lambda n: isinstance(n, HadamardProduct)
                      and any(isinstance(a, sp.MatMul) and a.as_coeff_mmul()[0] != 1 for a in n.args),
                      pull_coefficients)
        G = _doit(G)
        G = G.replace(lambda n: isinstance(n, sp.MatAdd), collect_factors)  # kept: a doit would expand it
    return G


def collect_factors(total: sp.MatAdd) -> sp.MatrixExpr:
    """Terms with one outer factor and one coefficient up to sign share them, the textbook way:
    (1/N) Xᵀa − (1/N) Xᵀy → (1/N) Xᵀ(a − y);  A xᵀ + B xᵀ → (A + B) xᵀ."""
    terms = list(total.args)
    for side in (0, -1):
        groups: dict = {}
        for t in terms:
            coeff, mats = t.as_coeff_matrices() if isinstance(t, sp.MatMul) else (sp.S.One, [t])
            if len(mats) < 2:
                continue
            groups.setdefault((mats[side], -coeff if coeff.could_extract_minus_sign() else coeff), []).append(t)
        for (factor, magnitude), members in groups.items():
            if len(members) < 2:
                continue
            inner = []
            for t in members:
                coeff, mats = t.as_coeff_matrices()
                rest = mats[1:] if side == 0 else mats[:-1]
                body = rest[0] if len(rest) == 1 else sp.MatMul(*rest)
                inner.append(body if coeff == magnitude else sp.MatMul(-1, body))
            rest_terms = [t for t in terms if t not in members]
            inner_sum = _doit(sp.MatAdd(*inner))
            pieces = [factor, inner_sum] if side == 0 else [inner_sum, factor]
            collected = sp.MatMul(*([magnitude] if magnitude != 1 else []), *pieces)
            return collect_factors(sp.MatAdd(collected, *rest_terms)) if rest_terms else collected
    coeffs = [t.as_coeff_mmul()[0] if isinstance(t, sp.MatMul) else sp.S.One for t in terms]
    if all(c.is_Number for c in coeffs) and len({abs(c) for c in coeffs}) == 1 and abs(coeffs[0]) != 1:
        c = abs(coeffs[0])  # 2b + 2Wh − 2y → 2(Wh + b − y)
        return sp.MatMul(c, sp.MatAdd(*[_doit(sp.MatMul(sp.Rational(1) / c, t)) for t in terms]))
    return total


# --- Jacobians of vector blocks, in compact form -------------------------------------------------
def vector_jacobian(F: sp.MatrixExpr, z: sp.MatrixSymbol) -> sp.MatrixExpr:
    """∂F/∂z for a column vector F (m × 1) of a column vector z (n × 1), rows = outputs:

    softmax: diag(a) − a aᵀ;  log softmax: I − 1 aᵀ;  elementwise f: diag(f'(z));
    products and sums by the chain rule (W z → W; F(G(z)) → J_F J_G)."""
    m, n = F.shape[0], z.shape[0]
    if F == z:
        return sp.Identity(n)
    if not F.has(z):
        return sp.ZeroMatrix(m, n)
    if isinstance(F, sp.MatAdd):
        return _doit(sp.MatAdd(*[vector_jacobian(a, z) for a in F.args if a.has(z)]))
    if isinstance(F, sp.MatMul):
        coeff, mats = F.as_coeff_matrices()
        if any(A.has(z) for A in mats[:-1]):
            raise SymgradLimit("a Jacobian through a product with z in more than its last factor is not supported")
        rest = mats[0] if len(mats) == 1 else sp.MatMul(*mats)
        J = _mul(*mats[:-1], vector_jacobian(mats[-1], z)) if mats[-1].has(z) else sp.ZeroMatrix(m, n)
        if not coeff.has(z):
            return _doit(_mul(coeff, J))
        # a scalar factor c(z): J(c F) = c J_F + F (∇c)ᵀ (the product rule)
        grad_c = matrix_gradient(coeff, z) if coeff.has(MatrixElement, sp.Trace, sp.Determinant) else sp.ZeroMatrix(n, 1)
        terms = [_mul(coeff, J)] if mats[-1].has(z) else []
        terms.append(_mul(rest, _T(grad_c)))
        return _doit(sp.MatAdd(*terms)) if len(terms) > 1 else _doit(terms[0])
    if isinstance(F, sp.Transpose) and isinstance(F.arg, (RowSoftmax, RowLogSoftmax)) \
            and isinstance(F.arg.arg, sp.Transpose):
        inner = F.arg.arg.arg  # F = block(Gᵀ)ᵀ for the column vector G
        a = F if isinstance(F.arg, RowSoftmax) else sp.Transpose(RowSoftmax(F.arg.arg))
        if isinstance(F.arg, RowSoftmax):
            local = sp.MatAdd(sp.DiagMatrix(a), sp.MatMul(-1, a, sp.Transpose(a)))
        else:
            local = sp.MatAdd(sp.Identity(m), sp.MatMul(-1, sp.OneMatrix(m, 1), sp.Transpose(a)))
        return _doit(_mul(local, vector_jacobian(inner, z)))
    if isinstance(F, ElementwiseApplyFunction):
        local = sp.DiagMatrix(elementwise_derivative(F))
        return _doit(_mul(local, vector_jacobian(F.expr, z)))
    if hasattr(F, "plain"):  # a fused block (σ(U) + C): the Jacobian of what it computes
        return vector_jacobian(F.plain(), z)
    if isinstance(F, HadamardProduct):  # product rule: J(a ∘ b) = diag(b) J_a + diag(a) J_b
        terms = []
        for i, a in enumerate(F.args):
            if a.has(z):
                others = F.args[:i] + F.args[i + 1:]
                rest = others[0] if len(others) == 1 else HadamardProduct(*others)
                terms.append(_mul(sp.DiagMatrix(rest), vector_jacobian(a, z)))
        return _doit(sp.MatAdd(*terms)) if len(terms) > 1 else _doit(terms[0])
    raise SymgradLimit(f"no Jacobian rule for {type(F).__name__}; use a scalar loss (gradient) instead")



matrix_doit = _doit  # the engine's doit that leaves scalar atoms alone (public for the graph's sweep)
