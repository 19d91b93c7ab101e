//! Membership (`x in xs`, `k, v in xs`), for the generated code.

use crate::value::{equal, get, set_find, Value, V};

/// `x in coll`: an array's element, a set's member or an object's value.
/// False for anything else.
#[export_name = "rt_member"]
pub extern "C" fn rt_member(coll: i32, x: i32) -> i32 {
    let (Some(coll), Some(x)) = (unsafe { V::from_addr(coll) }, unsafe { V::from_addr(x) }) else {
        return 0;
    };
    let found = match &*coll {
        Value::Array(a) => a.iter().any(|e| equal(*e, x)),
        Value::Set(s) => set_find(s, x).is_ok(),
        Value::Object(o) => o.iter().any(|(_, v)| equal(*v, x)),
        _ => false,
    };
    i32::from(found)
}

/// `k, v in coll`: `coll[k]` is `v` (for a set, `k` and `v` are the member).
#[export_name = "rt_member2"]
pub extern "C" fn rt_member2(coll: i32, k: i32, v: i32) -> i32 {
    let (Some(coll), Some(k), Some(v)) = (
        unsafe { V::from_addr(coll) },
        unsafe { V::from_addr(k) },
        unsafe { V::from_addr(v) },
    ) else {
        return 0;
    };
    if let Value::Set(_) = &*coll {
        if !equal(k, v) {
            return 0;
        }
    }
    i32::from(get(coll, k).is_some_and(|e| equal(e, v)))
}
