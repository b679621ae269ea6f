//! The term types the Python codec produces: the Rust classes (`Pid`, `Port`, `Reference`,
//! `Export`, `Fun`), the Python classes imported from `erlnode._terms`, and the atom cache.

use crate::etf;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyTuple, PyType};
use rustc_hash::FxBuildHasher;
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

/// Python's `repr` of a str, close enough for the node names and atoms we print.
fn quoted(text: &str) -> String {
    format!("'{}'", text.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// An atom for an identifier's node, checked like any atom.
fn node_atom(node: &str) -> PyResult<etf::Atom> {
    if node.chars().count() > etf::reader::MAX_ATOM_CHARS {
        return Err(pyo3::exceptions::PyValueError::new_err(
            "node name is longer than 255 characters",
        ));
    }
    Ok(etf::Atom::new(node))
}

/// An Erlang process identifier: a mailbox's `pid`, or one received from Erlang.
///
/// `str()` prints it as Erlang does, but with the node's name where erl prints a number that
/// only means something on that node; `parse_term` reads that form back.
///
/// >>> pid = Pid("erl@host", 85, 0, 3)
/// >>> pid
/// Pid('erl@host', 85, 0, 3)
/// >>> str(pid)
/// '<erl@host.85.0>'
/// >>> parse_term("<erl@host.85.0>")
/// Pid('erl@host', 85, 0, 0)
#[pyclass(name = "Pid", module = "erlnode", frozen, eq, hash, ord)]
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PyPid {
    pub pid: etf::Pid,
}

#[pymethods]
impl PyPid {
    #[new]
    #[pyo3(signature = (node, id, serial = 0, creation = 0))]
    fn new(node: &str, id: u32, serial: u32, creation: u32) -> PyResult<Self> {
        Ok(PyPid {
            pid: etf::Pid {
                node: node_atom(node)?,
                id,
                serial,
                creation,
            },
        })
    }

    /// The node the process lives on (an `Atom`).
    ///
    /// >>> Pid("erl@host", 85).node
    /// Atom('erl@host')
    #[getter]
    fn node(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        Ok(atom_object(py, self.pid.node.as_str())?.unbind())
    }
    /// The process's number on its node.
    ///
    /// >>> Pid("erl@host", 85).id
    /// 85
    #[getter]
    fn id(&self) -> u32 {
        self.pid.id
    }
    /// The serial: with `id`, tells apart processes that reuse a number.
    ///
    /// >>> parse_term("<erl@host.85.1>").serial
    /// 1
    #[getter]
    fn serial(&self) -> u32 {
        self.pid.serial
    }
    /// The creation (incarnation) of the node when it made the pid: the pids of a node that
    /// restarted under the same name differ by it.
    ///
    /// >>> Pid("erl@host", 85, 0, 3) == Pid("erl@host", 85, 0, 4)
    /// False
    /// >>> Pid("erl@host", 85, 0, 3).creation
    /// 3
    #[getter]
    fn creation(&self) -> u32 {
        self.pid.creation
    }

    fn __repr__(&self) -> String {
        let p = &self.pid;
        format!(
            "Pid({}, {}, {}, {})",
            quoted(p.node.as_str()),
            p.id,
            p.serial,
            p.creation
        )
    }

    fn __str__(&self) -> String {
        format!("<{}.{}.{}>", self.pid.node, self.pid.id, self.pid.serial)
    }

    fn __reduce__<'py>(
        &self,
        py: Python<'py>,
    ) -> PyResult<(Bound<'py, PyType>, Bound<'py, PyTuple>)> {
        let p = &self.pid;
        let args = (p.node.as_str(), p.id, p.serial, p.creation);
        Ok((py.get_type::<PyPid>(), args.into_pyobject(py)?))
    }
}

/// An Erlang port identifier (`open_port/2` makes them in Erlang).
///
/// >>> port = Port("erl@host", 7, 3)
/// >>> port
/// Port('erl@host', 7, 3)
/// >>> str(port)
/// '#Port<erl@host.7>'
#[pyclass(name = "Port", module = "erlnode", frozen, eq, hash, ord)]
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PyPort {
    pub port: etf::Port,
}

#[pymethods]
impl PyPort {
    #[new]
    #[pyo3(signature = (node, id, creation = 0))]
    fn new(node: &str, id: u64, creation: u32) -> PyResult<Self> {
        Ok(PyPort {
            port: etf::Port {
                node: node_atom(node)?,
                id,
                creation,
            },
        })
    }

    /// The node the port belongs to (an `Atom`).
    ///
    /// >>> Port("erl@host", 7).node
    /// Atom('erl@host')
    #[getter]
    fn node(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        Ok(atom_object(py, self.port.node.as_str())?.unbind())
    }
    /// The port's number on its node.
    ///
    /// >>> parse_term("#Port<erl@host.7>").id
    /// 7
    #[getter]
    fn id(&self) -> u64 {
        self.port.id
    }
    /// The creation (incarnation) of the node when it opened the port.
    ///
    /// >>> Port("erl@host", 7, 3).creation
    /// 3
    #[getter]
    fn creation(&self) -> u32 {
        self.port.creation
    }

    fn __repr__(&self) -> String {
        let p = &self.port;
        format!(
            "Port({}, {}, {})",
            quoted(p.node.as_str()),
            p.id,
            p.creation
        )
    }

    fn __str__(&self) -> String {
        format!("#Port<{}.{}>", self.port.node, self.port.id)
    }

    fn __reduce__<'py>(
        &self,
        py: Python<'py>,
    ) -> PyResult<(Bound<'py, PyType>, Bound<'py, PyTuple>)> {
        let p = &self.port;
        let args = (p.node.as_str(), p.id, p.creation);
        Ok((py.get_type::<PyPort>(), args.into_pyobject(py)?))
    }
}

/// An Erlang reference (`make_ref/0`, `Node.make_ref`, a monitor's): 1 to 5 32-bit words.
///
/// `str()` prints it as Erlang does (the words most significant first), with the node's
/// name in place of erl's node number.
///
/// >>> ref = Reference("erl@host", (1, 2, 3), 3)
/// >>> ref
/// Reference('erl@host', (1, 2, 3), 3)
/// >>> str(ref)
/// '#Ref<erl@host.3.2.1>'
#[pyclass(name = "Reference", module = "erlnode", frozen, eq, hash, ord)]
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PyReference {
    pub reference: etf::Reference,
}

#[pymethods]
impl PyReference {
    #[new]
    #[pyo3(signature = (node, ids, creation = 0))]
    fn new(node: &str, ids: Vec<u32>, creation: u32) -> PyResult<Self> {
        if ids.is_empty() || ids.len() > 5 {
            return Err(pyo3::exceptions::PyValueError::new_err(
                "a reference has 1 to 5 id words",
            ));
        }
        Ok(PyReference {
            reference: etf::Reference {
                node: node_atom(node)?,
                creation,
                ids,
            },
        })
    }

    /// The node that made the reference (an `Atom`).
    ///
    /// >>> Reference("erl@host", (1, 2, 3)).node
    /// Atom('erl@host')
    #[getter]
    fn node(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        Ok(atom_object(py, self.reference.node.as_str())?.unbind())
    }
    /// The reference's 32-bit words, as sent on the wire (least significant first).
    ///
    /// >>> parse_term("#Ref<erl@host.3.2.1>").ids
    /// (1, 2, 3)
    #[getter]
    fn ids<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        PyTuple::new(py, &self.reference.ids)
    }
    /// The creation (incarnation) of the node when it made the reference.
    ///
    /// >>> Reference("erl@host", (1, 2, 3), 3).creation
    /// 3
    #[getter]
    fn creation(&self) -> u32 {
        self.reference.creation
    }

    fn __repr__(&self) -> String {
        let r = &self.reference;
        let ids: Vec<String> = r.ids.iter().map(|i| i.to_string()).collect();
        let ids = if ids.len() == 1 {
            format!("({},)", ids[0])
        } else {
            format!("({})", ids.join(", "))
        };
        format!(
            "Reference({}, {ids}, {})",
            quoted(r.node.as_str()),
            r.creation
        )
    }

    /// Like Erlang's `#Ref<0.3.2.1>`: the words most significant first.
    fn __str__(&self) -> String {
        let r = &self.reference;
        let ids: Vec<String> = r.ids.iter().rev().map(|i| i.to_string()).collect();
        format!("#Ref<{}.{}>", r.node, ids.join("."))
    }

    fn __reduce__<'py>(
        &self,
        py: Python<'py>,
    ) -> PyResult<(Bound<'py, PyType>, Bound<'py, PyTuple>)> {
        let r = &self.reference;
        let args = (r.node.as_str(), r.ids.clone(), r.creation);
        Ok((py.get_type::<PyReference>(), args.into_pyobject(py)?))
    }
}

/// An external fun `fun Module:Function/Arity`: Erlang can call one that Python sends.
///
/// >>> seq = Export("lists", "seq", 2)
/// >>> format_term(seq)
/// 'fun lists:seq/2'
/// >>> parse_term("fun lists:seq/2") == seq
/// True
#[pyclass(name = "Export", module = "erlnode", frozen, eq, hash, ord)]
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PyExport {
    pub module: etf::Atom,
    pub function: etf::Atom,
    pub arity: u8,
}

#[pymethods]
impl PyExport {
    #[new]
    fn new(module: &str, function: &str, arity: u8) -> PyResult<Self> {
        Ok(PyExport {
            module: node_atom(module)?,
            function: node_atom(function)?,
            arity,
        })
    }

    /// The module (an `Atom`).
    ///
    /// >>> Export("lists", "seq", 2).module
    /// Atom('lists')
    #[getter]
    fn module(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        Ok(atom_object(py, self.module.as_str())?.unbind())
    }
    /// The function's name (an `Atom`).
    ///
    /// >>> Export("lists", "seq", 2).function
    /// Atom('seq')
    #[getter]
    fn function(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        Ok(atom_object(py, self.function.as_str())?.unbind())
    }
    /// How many arguments the function takes.
    ///
    /// >>> Export("lists", "seq", 2).arity
    /// 2
    #[getter]
    fn arity(&self) -> u8 {
        self.arity
    }

    fn __repr__(&self) -> String {
        format!(
            "Export({}, {}, {})",
            quoted(self.module.as_str()),
            quoted(self.function.as_str()),
            self.arity
        )
    }

    fn __str__(&self) -> String {
        format!("fun {}:{}/{}", self.module, self.function, self.arity)
    }
}

/// A closure received from Erlang: opaque, sent back out byte for byte.
///
/// Python cannot call it, but can keep it and send it back, to be called in Erlang.
///
/// Example::
///
///     # Erlang: Py ! {self(), fun(X) -> X * 2 end}
///     sender, double = mbox.receive()
///     mbox.send(sender, (Atom("apply"), double, 21))
///     # Erlang: receive {apply, F, X} -> F(X) end  gives 42
#[pyclass(name = "Fun", module = "erlnode", frozen, eq, hash)]
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PyFun {
    pub fun: etf::Fun,
}

#[pymethods]
impl PyFun {
    /// The module the closure was defined in (an `Atom`).
    ///
    /// Example::
    ///
    ///     # Erlang: Py ! fun(X) -> X * 2 end    (typed in the shell)
    ///     mbox.receive().module                 # Atom('erl_eval'): the shell's funs are its
    #[getter]
    fn module(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        Ok(atom_object(py, self.fun.module.as_str())?.unbind())
    }
    /// How many arguments the closure takes.
    ///
    /// Example::
    ///
    ///     # Erlang: Py ! fun(X) -> X * 2 end
    ///     mbox.receive().arity                  # 1
    #[getter]
    fn arity(&self) -> u8 {
        self.fun.arity
    }

    fn __repr__(&self) -> String {
        format!(
            "Fun(module={}, arity={})",
            quoted(self.fun.module.as_str()),
            self.fun.arity
        )
    }
}

/// The Python-defined term classes, imported once from `erlnode._terms`.
pub struct Types {
    pub atom: Py<PyType>,
    pub frozen_list: Py<PyType>,
    pub frozen_map: Py<PyType>,
    pub improper_list: Py<PyType>,
    pub bit_binary: Py<PyType>,
    pub exact_key: Py<PyType>,
}

impl Types {
    /// The `PyTypeObject` pointer of a class, for exact-type checks.
    pub fn ptr(ty: &Py<PyType>) -> *mut pyo3::ffi::PyTypeObject {
        ty.as_ptr().cast()
    }
}

static TYPES: PyOnceLock<Types> = PyOnceLock::new();

pub fn types(py: Python<'_>) -> PyResult<&'static Types> {
    TYPES.get_or_try_init(py, || {
        let m = py.import("erlnode._terms")?;
        let get = |name: &str| -> PyResult<Py<PyType>> {
            Ok(m.getattr(name)?.cast_into::<PyType>()?.unbind())
        };
        Ok(Types {
            atom: get("Atom")?,
            frozen_list: get("FrozenList")?,
            frozen_map: get("FrozenMap")?,
            improper_list: get("ImproperList")?,
            bit_binary: get("BitBinary")?,
            exact_key: get("ExactKey")?,
        })
    })
}

/// Keyed by the atom's UTF-8 bytes, so a decoder that finds them here skips validating them.
/// FxHash: atoms are short and their number is bounded (the cache is), so a fast hash
/// without a random key is enough.
type AtomMap = HashMap<Box<[u8]>, Py<PyAny>, FxBuildHasher>;

/// Decoded atoms are shared objects: one `Atom` per text, so decoding `ok` a million times
/// allocates nothing and map lookups hit the cached hash.
static ATOM_CACHE: Mutex<Option<AtomMap>> = Mutex::new(None);

/// Past this many distinct atoms, new ones are made fresh instead of cached.
const ATOM_CACHE_LIMIT: usize = 8192;

/// Makes `Atom` objects through the cache. Holds the cache's lock for its lifetime; when the
/// lock is busy (a decode re-entered from a finalizer while another runs on this thread),
/// it works uncached instead of waiting.
pub struct AtomMaker {
    guard: Option<MutexGuard<'static, Option<AtomMap>>>,
    class: &'static Py<PyType>,
}

impl AtomMaker {
    pub fn new(types: &'static Types) -> AtomMaker {
        let guard = match ATOM_CACHE.try_lock() {
            Ok(g) => Some(g),
            Err(std::sync::TryLockError::Poisoned(p)) => Some(p.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => None,
        };
        AtomMaker {
            guard,
            class: &types.atom,
        }
    }

    pub fn get<'py>(&mut self, py: Python<'py>, text: &str) -> PyResult<Bound<'py, PyAny>> {
        if let Some(atom) = self.cached(py, text.as_bytes()) {
            return Ok(atom);
        }
        let atom = self.class.bind(py).call1((text,))?;
        if let Some(guard) = self.guard.as_mut() {
            let map = guard.get_or_insert_with(AtomMap::default);
            if map.len() < ATOM_CACHE_LIMIT {
                map.insert(text.as_bytes().into(), atom.clone().unbind());
            }
        }
        Ok(atom)
    }

    /// The cached atom whose UTF-8 text is exactly `raw`, if any (only checked text gets in).
    pub fn cached<'py>(&mut self, py: Python<'py>, raw: &[u8]) -> Option<Bound<'py, PyAny>> {
        let map = self.guard.as_mut()?.as_ref()?;
        map.get(raw).map(|atom| atom.bind(py).clone())
    }
}

/// An `Atom` object for `text` (through the cache).
pub fn atom_object<'py>(py: Python<'py>, text: &str) -> PyResult<Bound<'py, PyAny>> {
    AtomMaker::new(types(py)?).get(py, text)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyPid>()?;
    m.add_class::<PyPort>()?;
    m.add_class::<PyReference>()?;
    m.add_class::<PyExport>()?;
    m.add_class::<PyFun>()?;
    Ok(())
}
