/**
 * A binary heap whose items remember their position, so that any item can be removed or re-keyed in
 * O(log n). The scheduler uses one for priority lanes and two for deadlines.
 *
 * @internal
 */
export interface HeapItem {
  heapIndex: number
}

export class IndexedHeap<T extends HeapItem> {
  readonly items: Array<T> = []
  /** `before(a, b)` is true when `a` must come out first. */
  readonly before: (a: T, b: T) => boolean
  constructor(before: (a: T, b: T) => boolean) {
    this.before = before
  }

  get size(): number {
    return this.items.length
  }

  peek(): T | undefined {
    return this.items[0]
  }

  push(item: T): void {
    item.heapIndex = this.items.length
    this.items.push(item)
    this.up(item.heapIndex)
  }

  pop(): T | undefined {
    const top = this.items[0]
    if (top !== undefined) this.remove(top)
    return top
  }

  remove(item: T): void {
    const index = item.heapIndex
    if (index < 0) return
    const items = this.items
    const last = items.pop()!
    item.heapIndex = -1
    if (last === item) return
    items[index] = last
    last.heapIndex = index
    this.update(last)
  }

  /** Restores the order after `item`'s key changed. */
  update(item: T): void {
    const index = item.heapIndex
    if (index > 0 && this.before(item, this.items[(index - 1) >> 1]!)) this.up(index)
    else this.down(index)
  }

  private up(index: number): void {
    const items = this.items
    const item = items[index]!
    while (index > 0) {
      const parentIndex = (index - 1) >> 1
      const parent = items[parentIndex]!
      if (!this.before(item, parent)) break
      items[index] = parent
      parent.heapIndex = index
      index = parentIndex
    }
    items[index] = item
    item.heapIndex = index
  }

  private down(index: number): void {
    const items = this.items
    const length = items.length
    const item = items[index]!
    while (true) {
      let child = 2 * index + 1
      if (child >= length) break
      const right = child + 1
      if (right < length && this.before(items[right]!, items[child]!)) child = right
      const childItem = items[child]!
      if (!this.before(childItem, item)) break
      items[index] = childItem
      childItem.heapIndex = index
      index = child
    }
    items[index] = item
    item.heapIndex = index
  }
}
