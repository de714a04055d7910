fn main() {
    let n = 2_000_000;
    let m = taskwarden::TaskManager::new(2);
    for _ in 0..n { drop(m.spawn(|| ()).unwrap()); }
    m.drain();
}
