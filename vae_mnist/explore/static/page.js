// The explore page: it asks the server what the run's parts offer (/api/info) and builds the
// controls those capabilities call for, never asking which latent kind the run has. Every image
// comes from the server's decoder, so it is the one `vae-mnist plot decode` draws.
"use strict";

// The classes' colours: viridis at class / 9, as the run's scatter figures and the notebook
// colour them, so that a class has one colour on the page and in the figures.
const CLASS_COLOURS = [
  "#440154", "#482878", "#3e4989", "#31688e", "#26828e",
  "#1f9e89", "#35b779", "#6ece58", "#b5de2b", "#fde725",
];

// What tests and the curious can read: the last decoding drawn, and whether one is on its way.
const explore = {
  info: null,
  shown: null, // the request whose image the "decoded" canvas shows
  decodes: 0, // decodings drawn so far
  inflight: false,
  pending: false,
  testRequests: 0, // test images asked for so far; only the latest one's answer is shown
  codesSet: 0, // codes set by hand or by a prior sample; a test image asked before keeps out
  // Nothing on its way, and the image shown is that of the code the controls hold.
  get settled() {
    return (
      this.info !== null && !this.inflight && !this.pending &&
      JSON.stringify(this.shown) === JSON.stringify(currentRequest())
    );
  },
};
window.explore = explore;

// The code the controls hold: a point z (continuous) or a class per variable (discrete);
// `pinned` is where the page returns when the pointer leaves the plane.
const state = { z: null, code: null, pinned: null, hovering: false };

function element(id) {
  return document.getElementById(id);
}

function make(tag, properties = {}, children = []) {
  const node = document.createElement(tag);
  Object.assign(node, properties);
  for (const child of children) node.append(child);
  return node;
}

function showError(message) {
  element("error").textContent = message || "";
}

async function ask(path, body) {
  const options = body === undefined
    ? {}
    : { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) };
  const response = await fetch(path, options);
  const answer = await response.json();
  if (!response.ok) throw new Error(answer.error || `${response.status}`);
  return answer;
}

function offers(part, capability) {
  return explore.info[part].capabilities.includes(capability);
}

// Two decimals, as the blog wrote its points: fine enough for a pointer, short to type.
function rounded(value) {
  return Math.round(value * 100) / 100;
}

function drawDigit(canvas, pixels) {
  const side = explore.info.side;
  const context = canvas.getContext("2d");
  const image = context.createImageData(side, side);
  for (let index = 0; index < side * side; index++) {
    const level = Math.round(Math.min(1, Math.max(0, pixels[index])) * 255);
    image.data.set([level, level, level, 255], 4 * index);
  }
  context.putImageData(image, 0, 0);
}

// -- decoding: one request on its way at a time, the latest code sent next -----------------

function currentRequest() {
  return offers("posterior", "continuous") ? { z: state.z.slice() } : { code: state.code.slice() };
}

function requestDecode() {
  if (explore.inflight) {
    explore.pending = true;
    return;
  }
  explore.inflight = true;
  explore.pending = false;
  const request = currentRequest();
  ask("/api/decode", request)
    .then((answer) => {
      drawDigit(element("decoded"), answer.image);
      explore.shown = request;
      explore.decodes += 1;
      showReadout(request);
      showError("");
    })
    .catch((error) => showError(error.message))
    .finally(() => {
      explore.inflight = false;
      if (explore.pending) requestDecode();
      else redrawPlane();
    });
}

function commandFor(request) {
  const base = explore.info.decode_command;
  if (request.z) return `${base} --z ${request.z.map(String).join(" ")}`;
  return `${base} --code ${request.code.join(",")}`;
}

function showReadout(request) {
  // A point clicked is pinned, though the pointer is still over it.
  const pinnedHere = JSON.stringify(request) === JSON.stringify(state.pinned);
  const where = !plane.canvas
    ? ""
    : state.hovering && !pinnedHere
      ? " under the pointer (click to pin it)"
      : " pinned";
  element("readout").replaceChildren(
    request.z ? `z = [${request.z.map(String).join(", ")}]` : `code = ${request.code.join(",")}`,
    make("span", { textContent: where })
  );
  element("command").textContent = commandFor(request);
}

function codeChanged() {
  explore.codesSet++;
  state.pinned = currentRequest();
  syncControls();
  requestDecode();
}

// -- the plane: the test set's scatter behind a point that follows the pointer -------------

const plane = { canvas: null, background: null, dimensions: null, ranges: null };

function planeToPixel(x, y) {
  const [[xLow, xHigh], [yLow, yHigh]] = plane.ranges;
  const { width, height } = plane.canvas;
  return [((x - xLow) / (xHigh - xLow)) * width, ((yHigh - y) / (yHigh - yLow)) * height];
}

function pixelToPlane(px, py) {
  const [[xLow, xHigh], [yLow, yHigh]] = plane.ranges;
  const { width, height } = plane.canvas;
  return [rounded(xLow + (px / width) * (xHigh - xLow)), rounded(yHigh - (py / height) * (yHigh - yLow))];
}

function drawAxes(context) {
  const [[xLow, xHigh], [yLow, yHigh]] = plane.ranges;
  const { width, height } = plane.canvas;
  context.strokeStyle = "#ccc";
  context.fillStyle = "#666";
  context.font = "11px sans-serif";
  // The corner is the x labels': a y label there would sit on the first of them.
  const corner = 16;
  for (let value = Math.ceil(xLow); value <= Math.floor(xHigh); value++) {
    const [px] = planeToPixel(value, 0);
    context.beginPath();
    context.moveTo(px, height);
    context.lineTo(px, height - (value === 0 ? height : 6));
    context.stroke();
    context.fillText(String(value), px + 2, height - 4);
  }
  for (let value = Math.ceil(yLow); value <= Math.floor(yHigh); value++) {
    const [, py] = planeToPixel(0, value);
    context.beginPath();
    context.moveTo(0, py);
    context.lineTo(value === 0 ? width : 6, py);
    context.stroke();
    if (py < height - corner) context.fillText(String(value), 2, py - 2);
  }
  const [first, second] = plane.dimensions;
  context.fillText(`z[${first}] →`, width - 48, height - 16);
  context.fillText(`↑ z[${second}]`, 16, 12);
}

function drawScatter(description) {
  const background = document.createElement("canvas");
  background.width = plane.canvas.width;
  background.height = plane.canvas.height;
  const context = background.getContext("2d");
  context.fillStyle = "#fff";
  context.fillRect(0, 0, background.width, background.height);
  drawAxes(context);
  context.globalAlpha = 0.55;
  description.points.forEach(([x, y], index) => {
    const [px, py] = planeToPixel(x, y);
    context.fillStyle = CLASS_COLOURS[description.labels[index] % CLASS_COLOURS.length];
    context.fillRect(px - 1, py - 1, 2.5, 2.5);
  });
  context.globalAlpha = 1;
  plane.background = background;
}

function drawMark(context, x, y, text, colour, radius = 6, below = false) {
  const [px, py] = planeToPixel(x, y);
  context.strokeStyle = colour;
  context.lineWidth = 2;
  context.beginPath();
  context.arc(px, py, radius, 0, 2 * Math.PI);
  context.stroke();
  context.lineWidth = 1;
  if (text) {
    context.fillStyle = colour;
    context.font = "bold 12px sans-serif";
    context.fillText(text, px + radius + 2, below ? py + radius + 10 : py - radius);
  }
}

function redrawPlane() {
  if (!plane.canvas) return;
  const context = plane.canvas.getContext("2d");
  context.drawImage(plane.background, 0, 0);
  const [first, second] = plane.dimensions;
  for (const [index, point] of Object.entries(plane.marked)) {
    drawMark(context, point[0], point[1], `test ${index}`, "#000", 5);
  }
  if (state.pinned && state.pinned.z) {
    drawMark(context, state.pinned.z[first], state.pinned.z[second], "pinned", "#d00", 7, true);
  }
  if (state.hovering) drawMark(context, state.z[first], state.z[second], "", "#333", 3);
}

function setUpPlane(continuous) {
  const description = continuous.plane;
  plane.canvas = element("plane");
  plane.dimensions = description.dimensions;
  plane.ranges = description.dimensions.map((dimension) => continuous.ranges[dimension]);
  plane.marked = {};
  for (const index of explore.info.marked) plane.marked[index] = description.points[index];
  drawScatter(description);
  const names = explore.info.class_names;
  element("legend").replaceChildren(
    ...names.map((name, label) => {
      const swatch = make("span", { className: "swatch" });
      swatch.style.background = CLASS_COLOURS[label % CLASS_COLOURS.length];
      return make("li", {}, [swatch, name]);
    })
  );
  element("plane-hint").textContent =
    "the test set's codes by class; move the pointer to decode a point, click to pin it" +
    (explore.info.marked.length ? `; rings: the blog's two nines (test images ${explore.info.marked.join(" and ")})` : "");
  const pointAt = (event) => {
    const box = plane.canvas.getBoundingClientRect();
    const px = ((event.clientX - box.left) / box.width) * plane.canvas.width;
    const py = ((event.clientY - box.top) / box.height) * plane.canvas.height;
    return pixelToPlane(px, py);
  };
  const moveTo = ([x, y]) => {
    state.z[plane.dimensions[0]] = x;
    state.z[plane.dimensions[1]] = y;
  };
  plane.canvas.addEventListener("pointermove", (event) => {
    state.hovering = true;
    moveTo(pointAt(event));
    syncControls();
    requestDecode();
  });
  plane.canvas.addEventListener("pointerleave", () => {
    state.hovering = false;
    state.z = state.pinned.z.slice();
    syncControls();
    requestDecode();
  });
  plane.canvas.addEventListener("click", (event) => {
    explore.codesSet++;
    moveTo(pointAt(event));
    state.pinned = currentRequest();
    syncControls();
    requestDecode();
  });
  element("plane-box").hidden = false;
}

// -- sliders, selectors and toggles ------------------------------------------------------------

const controls = { sliders: [], selectors: [] };

function setUpSliders(continuous) {
  const rows = continuous.order.map((dimension) => {
    const [low, high] = continuous.ranges[dimension];
    const slider = make("input", { type: "range", min: low, max: high, step: 0.01, value: 0 });
    slider.dataset.dimension = dimension;
    const value = make("output", { textContent: "0" });
    slider.addEventListener("input", () => {
      state.z[dimension] = rounded(Number(slider.value));
      codeChanged();
    });
    controls.sliders.push({ slider, value, dimension });
    const activity = continuous.activity[dimension].toFixed(3);
    const onPlane = plane.dimensions && plane.dimensions.includes(dimension) ? ", on the plane" : "";
    return make("label", { className: "slider" }, [
      make("span", { textContent: `z[${dimension}]`, title: `variance of its mean over the test set: ${activity}` }),
      slider,
      value,
      make("span", { className: "hint", textContent: `activity ${activity}${onPlane}` }),
    ]);
  });
  element("sliders").replaceChildren(...rows);
  element("sliders-box").hidden = false;
}

function setUpCodes(layout) {
  const binary = layout.classes === 2;
  element("codes-title").textContent = binary
    ? `the code: ${layout.variables} binary units`
    : `the code: ${layout.variables} variables of ${layout.classes} classes`;
  const cells = [];
  for (let variable = 0; variable < layout.variables; variable++) {
    let input;
    if (binary) {
      input = make("input", { type: "checkbox" });
      input.addEventListener("change", () => {
        state.code[variable] = input.checked ? 1 : 0;
        codeChanged();
      });
    } else {
      input = make("select", {}, Array.from({ length: layout.classes }, (_, value) => make("option", { value, textContent: String(value) })));
      input.addEventListener("change", () => {
        state.code[variable] = Number(input.value);
        codeChanged();
      });
    }
    input.dataset.variable = variable;
    controls.selectors.push(input);
    cells.push(make("label", { className: binary ? "toggle" : "selector" }, [make("span", { textContent: String(variable) }), input]));
  }
  element("codes").replaceChildren(...cells);
  element("codes").className = binary ? "toggles" : "selectors";
  element("codes-box").hidden = false;
}

// Put the code the page holds into every control showing it.
function syncControls() {
  for (const { slider, value, dimension } of controls.sliders) {
    slider.value = state.z[dimension];
    value.textContent = String(state.z[dimension]);
  }
  controls.selectors.forEach((input, variable) => {
    if (input.type === "checkbox") input.checked = state.code[variable] === 1;
    else input.value = String(state.code[variable]);
  });
  redrawPlane();
}

// Place a code the server gave (a test image's, a prior sample's) in the controls.
function place(answer) {
  if (answer.z) state.z = answer.z.map(rounded);
  if (answer.code) state.code = answer.code.slice();
  state.pinned = currentRequest();
  syncControls();
  requestDecode();
}

// -- the test images and the prior's samples -----------------------------------------------

// A class's name with its article: "a 7", "an 8", "an Ankle boot" (of the digits only 8 is
// said with a vowel first).
function withArticle(name) {
  return `${/^[aeiou8]/i.test(name) ? "an" : "a"} ${name}`;
}

// Show a test image and its reconstruction; with `placing`, also put its code in the controls.
async function showTestImage(which, placing = true) {
  // An earlier answer arriving late (the start's first image, say) must not replace the image
  // of an index typed while it was on its way, nor its code one set meanwhile.
  const request = ++explore.testRequests;
  const codesSet = explore.codesSet;
  try {
    const answer = await ask(`/api/test/${which}`);
    if (request !== explore.testRequests) return;
    placing = placing && codesSet === explore.codesSet;
    drawDigit(element("original"), answer.image);
    drawDigit(element("reconstruction"), answer.reconstruction);
    element("test-index").value = answer.index;
    const label = withArticle(explore.info.class_names[answer.label]);
    const decimals = answer.z ? " (rounded to two decimals)" : "";
    element("test-caption").textContent = placing
      ? `test image ${answer.index} (${label}); its most probable code is placed in the controls${decimals}`
      : `test image ${answer.index} (${label}); "show" places its most probable code in the controls`;
    element("test-command").textContent = `${explore.info.decode_command} --index ${answer.index}`;
    if (placing) place(answer);
  } catch (error) {
    if (request === explore.testRequests) showError(error.message);
  }
}

async function drawPriorSample() {
  explore.codesSet++;
  try {
    place(await ask("/api/prior_sample", {}));
    const index = element("test-index").value;
    if (index !== "") {
      element("test-caption").textContent = `test image ${index}, for comparison: the controls hold a sample of the prior now`;
    }
  } catch (error) {
    showError(error.message);
  }
}

// -- the header and the start ------------------------------------------------------------------

function showHeader(info) {
  element("run-name").textContent = info.run;
  document.title = `vae-mnist explore: ${info.run}`;
  const epochs = info.epochs === null ? "?" : info.epochs;
  element("run-summary").textContent =
    `preset ${info.preset}, ${info.dataset}, ${epochs} epochs; posterior: ${info.posterior.description}; prior: ${info.prior.description}` +
    (info.metrics ? "" : " (not evaluated: vae-mnist evaluate adds the test numbers)");
  if (info.metrics) {
    element("metrics").replaceChildren(
      ...info.metrics.map(([label, value]) => make("tr", {}, [make("th", { textContent: label }), make("td", { textContent: value })]))
    );
  }
}

async function start() {
  try {
    explore.info = await ask("/api/info");
  } catch (error) {
    showError(`the run could not be described: ${error.message}`);
    return;
  }
  const info = explore.info;
  showHeader(info);
  element("test-index").max = info.test_count - 1;
  if (offers("posterior", "continuous")) {
    const continuous = info.continuous;
    // The prior's mean, until moved.
    state.z = continuous.prior_mean.slice();
    if (continuous.plane) setUpPlane(continuous);
    // A 2-D latent is all plane; more (or fewer) dimensions get a slider each.
    if (info.posterior.layout.dimensions !== 2) setUpSliders(continuous);
  }
  if (offers("posterior", "codes")) {
    state.code = new Array(info.posterior.layout.variables).fill(0);
    setUpCodes(info.posterior.layout);
  }
  if (offers("prior", "sample")) {
    element("prior-hint").textContent = `p(z): ${info.prior.description}`;
    element("prior-sample").addEventListener("click", drawPriorSample);
    element("prior-box").hidden = false;
  }
  element("test-form").addEventListener("submit", (event) => {
    event.preventDefault();
    showTestImage(element("test-index").value);
  });
  element("test-random").addEventListener("click", () => showTestImage("random"));
  state.pinned = currentRequest();
  syncControls();
  if (offers("posterior", "continuous")) {
    requestDecode();
    // The controls start at the prior's mean; the blog's first nine is shown beside them.
    showTestImage(info.marked.length ? info.marked[0] : 0, false);
  } else {
    // A discrete code has no prior mean to start from: start from the blog's first nine's.
    showTestImage(info.marked.length ? info.marked[0] : 0);
  }
}

document.addEventListener("DOMContentLoaded", start);
