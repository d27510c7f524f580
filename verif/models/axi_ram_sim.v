// Simulation-only AXI4 slave RAM: the DRAM of whole-network RTL runs, at Verilator speed.
//
// Why not cocotbext-axi's AxiRam here: it runs in Python every cycle (~50-85k cycles/s on this
// machine); a MobileNet is millions of cycles. This model keeps the whole memory system in the
// simulator, so cocotb only writes the image, starts the run and waits for the interrupt.
// cocotbext-axi's AxiRam (with pause generators) remains the reference slave of the stall tests.
//
// Behaviour (one ID, INCR bursts of full-width beats, which is what hdl/dma.py issues):
// - reads: up to 8 bursts accepted ahead; a burst's first beat leaves READ_LATENCY cycles after
//   its AR was accepted, then one beat per cycle while rready;
// - writes: AW and W accepted independently, data written with wstrb, one B per burst;
// - an access outside [0, WORDS * bytes) answers DECERR and touches nothing;
// - a stall percentage > 0 deasserts arready/rvalid/awready/wready/bvalid pseudo-randomly (an
//   LFSR), for cheap stress runs; the read latency, the stall percentage and the LFSR seed are
//   the parameters' values unless the plusargs +dram_latency=N, +dram_stall=P, +dram_seed=S
//   override them (so one build serves every setting);
// - the memory is `mem` (word-addressed), reachable from cocotb as dut.<instance>.mem (slow for
//   big regions: one VPI call per word). Bulk transfers go through a file named by the plusarg
//   +dram_file=FILE: a rising edge on `sim_load` reads words [sim_lo, sim_hi] from it
//   ($readmemh; the file may give fewer), one on `sim_dump` writes them to it ($writememh).
/* verilator lint_off UNUSEDSIGNAL */
module axi_ram_sim #(
    parameter DATA_BYTES = 8,
    parameter ADDR_WIDTH = 32,
    parameter WORDS = 1 << 20,
    parameter READ_LATENCY = 16,
    parameter STALL_PERCENT = 0,
    parameter SEED = 1
) (
    input clk,
    input rst,
    input sim_load, input sim_dump, input [31:0] sim_lo, input [31:0] sim_hi,
    input  [ADDR_WIDTH-1:0] awaddr, input [7:0] awlen, input [2:0] awsize, input [1:0] awburst,
    input awid, input awvalid, output awready,
    input  [DATA_BYTES*8-1:0] wdata, input [DATA_BYTES-1:0] wstrb, input wlast, input wvalid,
    output wready,
    output bid, output [1:0] bresp, output bvalid, input bready,
    input  [ADDR_WIDTH-1:0] araddr, input [7:0] arlen, input [2:0] arsize, input [1:0] arburst,
    input arid, input arvalid, output arready,
    output rid, output [DATA_BYTES*8-1:0] rdata, output [1:0] rresp, output rlast, output rvalid,
    input rready
);
    localparam LG = $clog2(DATA_BYTES);
    localparam QD = 8;

    reg [DATA_BYTES*8-1:0] mem [0:WORDS-1];
    reg [1023:0] sim_file;
    reg have_file;
    reg sim_load_q, sim_dump_q;
    integer latency, stall_percent, seed;
    initial begin
        have_file = $value$plusargs("dram_file=%s", sim_file);
        if (!$value$plusargs("dram_latency=%d", latency)) latency = READ_LATENCY;
        if (!$value$plusargs("dram_stall=%d", stall_percent)) stall_percent = STALL_PERCENT;
        if (!$value$plusargs("dram_seed=%d", seed)) seed = SEED;
    end
    always @(posedge clk) begin
        sim_load_q <= sim_load;
        sim_dump_q <= sim_dump;
        if (sim_load && !sim_load_q && have_file) $readmemh(sim_file, mem, sim_lo, sim_hi);
        if (sim_dump && !sim_dump_q && have_file) $writememh(sim_file, mem, sim_lo, sim_hi);
    end

    // ---- pseudo-random stalls ----
    reg [31:0] lfsr;
    wire [6:0] roll = lfsr[6:0] % 7'd100;
    wire go = (stall_percent == 0) || ({25'd0, roll} >= stall_percent);
    always @(posedge clk) begin
        if (rst) lfsr <= seed[31:0] | 32'd1;
        else lfsr <= {lfsr[30:0], lfsr[31] ^ lfsr[21] ^ lfsr[1] ^ lfsr[0]};
    end

    function automatic in_range(input [ADDR_WIDTH-1:0] a, input [7:0] len);
        in_range = ({1'b0, a} >> LG) + {{(ADDR_WIDTH-7){1'b0}}, len} < (ADDR_WIDTH+1)'(WORDS);
    endfunction

    // ---- reads ----
    reg [ADDR_WIDTH-1:0] q_addr [0:QD-1];
    reg [7:0] q_len [0:QD-1];
    reg [63:0] q_time [0:QD-1];
    reg [3:0] q_head, q_tail;
    wire [3:0] q_count = q_tail - q_head;
    reg [63:0] now;
    reg [7:0] beat;
    assign arready = (q_count < QD) && go;
    wire [2:0] h = q_head[2:0];
    wire head_ready = (q_count != 0) && (now >= q_time[h] + 64'(latency));
    wire head_ok = in_range(q_addr[h], q_len[h]);
    wire [ADDR_WIDTH-1:0] r_word = (q_addr[h] >> LG) + {{(ADDR_WIDTH-8){1'b0}}, beat};
    assign rvalid = head_ready && go;
    assign rdata = head_ok ? mem[r_word[$clog2(WORDS)-1:0]] : {DATA_BYTES*8{1'b0}};
    assign rresp = head_ok ? 2'b00 : 2'b11;
    assign rlast = beat == q_len[h];
    assign rid = 1'b0;
    always @(posedge clk) begin
        if (rst) begin
            q_head <= 0; q_tail <= 0; now <= 0; beat <= 0;
        end else begin
            now <= now + 1;
            if (arvalid && arready) begin
                q_addr[q_tail[2:0]] <= araddr;
                q_len[q_tail[2:0]] <= arlen;
                q_time[q_tail[2:0]] <= now;
                q_tail <= q_tail + 1;
            end
            if (rvalid && rready) begin
                if (rlast) begin beat <= 0; q_head <= q_head + 1; end
                else beat <= beat + 1;
            end
        end
    end

    // ---- writes ----
    reg aw_full;
    reg [ADDR_WIDTH-1:0] w_addr;
    reg [7:0] w_len, w_beat;
    reg b_pending;
    reg [1:0] b_resp;
    assign awready = !aw_full && go;
    assign wready = aw_full && !b_pending && go;
    assign bvalid = b_pending && go;
    assign bresp = b_resp;
    assign bid = 1'b0;
    wire w_ok = in_range(w_addr, w_len);
    wire [ADDR_WIDTH-1:0] w_word = (w_addr >> LG) + {{(ADDR_WIDTH-8){1'b0}}, w_beat};
    integer k;
    always @(posedge clk) begin
        if (rst) begin
            aw_full <= 0; b_pending <= 0; w_beat <= 0;
        end else begin
            if (awvalid && awready) begin
                aw_full <= 1; w_addr <= awaddr; w_len <= awlen; w_beat <= 0;
            end
            if (wvalid && wready) begin
                if (w_ok)
                    for (k = 0; k < DATA_BYTES; k = k + 1)
                        if (wstrb[k]) mem[w_word[$clog2(WORDS)-1:0]][k*8 +: 8] <= wdata[k*8 +: 8];
                w_beat <= w_beat + 1;
                if (w_beat == w_len) begin
                    aw_full <= 0; b_pending <= 1; b_resp <= w_ok ? 2'b00 : 2'b11;
                end
            end
            if (bvalid && bready) b_pending <= 0;
        end
    end
endmodule
