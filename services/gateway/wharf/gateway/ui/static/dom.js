// Building the page's elements. Every piece of text goes in as a text node (never as HTML), so
// nothing the API returns (a container's name, a label, an error message) can become markup.

/** An element: `attrs` are attributes (`class`, `title`, `data-*`…), or listeners when the
 *  value is a function (`onclick`); children are nodes or text (null and false skipped). */
export function h(tag, attrs = {}, ...children) {
  const element = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) {
      continue;
    }
    if (typeof value === "function" && key.startsWith("on")) {
      element.addEventListener(key.slice(2), value);
    } else {
      element.setAttribute(key, value === true ? "" : String(value));
    }
  }
  append(element, children);
  return element;
}

function append(element, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) {
      continue;
    }
    if (Array.isArray(child)) {
      append(element, child);
    } else if (child instanceof Node) {
      element.appendChild(child);
    } else {
      element.appendChild(document.createTextNode(String(child)));
    }
  }
}

/** Replace an element's children. */
export function fill(element, ...children) {
  element.replaceChildren();
  append(element, children);
  return element;
}

/** The element with this id (an Error if the page lacks it: a typo, not a runtime state). */
export function byId(id) {
  const element = document.getElementById(id);
  if (element === null) {
    throw new Error(`the page has no #${id}`);
  }
  return element;
}

/** Show a message in an element: `kind` is "error", "ok" or "" (plain). */
export function say(element, text, kind = "") {
  element.textContent = text;
  element.className = kind ? `message ${kind}` : "message";
}
