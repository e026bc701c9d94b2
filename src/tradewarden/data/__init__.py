"""Market data: bundled samples, CSV/Parquet files, validation, quality reports, resampling.

Typical use::

    from tradewarden.data import load_market_data

    data = load_market_data(["BTC-USD"], timeframe="4h", start="2025-01-01")
    bars = data.series["BTC-USD"]          # BarSeries, 4h, epoch-aligned
    report = data.quality["BTC-USD"].to_dict()

Every problem with the data itself raises :class:`DataError`, whose one-line message
names the file and, where relevant, the 1-based data row and the field.
"""

from tradewarden.data._columns import canonical_symbol
from tradewarden.data.errors import DataError
from tradewarden.data.loaders import (
                                      LoadedData,
                                      bundled_path,
                                      bundled_symbols,
                                      load_market_data,
                                      read_ohlcv_file,
)
from tradewarden.data.quality import (
                                      MAX_SKIPPED_DETAILS,
                                      DataQuality,
                                      infer_timeframe_seconds,
                                      validate_frame,
)
from tradewarden.data.resample import resample, timeframe_label, timeframe_seconds

__all__ = [
    "DataError", "DataQuality", "LoadedData", "MAX_SKIPPED_DETAILS", "bundled_path",
    "bundled_symbols", "canonical_symbol", "infer_timeframe_seconds", "load_market_data",
    "read_ohlcv_file", "resample", "timeframe_label", "timeframe_seconds", "validate_frame",
]
